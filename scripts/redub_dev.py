"""Measure issue 5's bar: re-dub dev clips with their own audio and compare with the original, the static-mouth
baseline and a plain re-encode (see dubber/evaluation/redub.py and docs/DUBBING.md).

    .venv/bin/python scripts/redub_dev.py ../shared/data/manifest.csv --per-speaker 2 [--steps 8] --report out.json
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dubber.evaluation.redub import redub_clip, static_pipeline
from dubber.pipeline import DubbingPipeline, DubOptions


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r[key] is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def summarise(rows: list[dict]) -> dict:
    keys = (
        "opening_correlation",
        "opening_correlation_best_offset",
        "psnr_dub",
        "psnr_static",
        "seam_dub",
        "seam_plain",
        "edge_dub",
        "edge_plain",
    )
    out = {"clips": len(rows), **{k: _mean(rows, k) for k in keys}}
    if out["seam_dub"] is not None:
        out["seam_gap_db"] = round(out["seam_plain"] - out["seam_dub"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--per-speaker", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="default: the weights' own")
    ap.add_argument("--weights", default="default")
    ap.add_argument("--references", choices=("nearest", "spread"), default="nearest")
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    with args.manifest.open() as f:
        rows = list(csv.DictReader(f))
    trained = {r["speaker"] for r in rows if r["split"] == "train"}
    chosen, per = [], defaultdict(int)
    for r in rows:
        if r["split"] == args.split and per[r["speaker"]] < args.per_speaker:
            per[r["speaker"]] += 1
            chosen.append(r)
    pipe = DubbingPipeline.from_pretrained(
        args.weights, device="cpu", options=DubOptions(steps=args.steps, references=args.references)
    )
    static = static_pipeline(pipe)
    scores = []
    for r in chosen:
        s = asdict(redub_clip(pipe, static, args.manifest.parent / r["path"], speaker=r["speaker"]))
        s["seen"] = r["speaker"] in trained
        scores.append(s)
        print(json.dumps(s))
    report = {
        "steps": args.steps or pipe.renderer.default_steps,
        "command": f"scripts/redub_dev.py {args.manifest} --split {args.split} --per-speaker {args.per_speaker}"
        + (f" --steps {args.steps}" if args.steps else "")
        + f" --weights {args.weights} --references {args.references}",
        "unseen": summarise([s for s in scores if not s["seen"]]),
        "seen": summarise([s for s in scores if s["seen"]]),
        "all": summarise(scores),
        "clips": scores,
    }
    print(json.dumps({k: report[k] for k in ("unseen", "seen", "all")}, indent=1))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
