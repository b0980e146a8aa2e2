"""Ship a jointly fine-tuned pair (`dub train joint`): fp16 copies of both models into weights/default and new
manifest entries that keep the record of what they were fine-tuned from.

    python scripts/ship_joint.py RUN_DIR --renderer-report r.json --landmarks-report l.json --steps 1

RUN_DIR holds config.json, log.jsonl and model/{landmarks,renderer}; the reports are what `dub eval renderer
--report` and `dub eval landmarks --report` wrote for RUN_DIR/model/renderer and RUN_DIR/model/landmarks. ``--steps``
is the renderer's default step count, chosen from measurements (docs/RENDERER.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from ship_landmarks import landmark_metrics
from ship_renderer import renderer_metrics

from dubber.models.landmark_completer import LandmarkCompleter
from dubber.render.renderer_pipeline import FaceRenderer
from dubber.weights import LANDMARKS_MODEL, RENDERER_MODEL, read_manifest, register_model, weights_root


def _joint_record(run: Path, hardware: str) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in log if r.get("eval")]
    done = [r for r in log if "done" in r]
    return {
        "command": f"dub train joint --data CACHE --out RUN --max-steps {cfg['train']['max_steps']}",
        "steps": done[-1]["step"] if done else evals[-1]["step"],
        "minutes": done[-1]["minutes"] if done else evals[-1].get("minutes"),
        "hardware": hardware,
        "settings": cfg["train"],
        "dev_end_to_end": {"before": evals[0], "after": evals[-1]},
    }


def _ship(name: str, model, dest: Path, previous: dict, info: dict, root: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    model.save_pretrained(dest, dtype=torch.float16)
    keep = {k: v for k, v in previous.items() if k not in ("folder", "files", "metrics", "bars", "training")}
    entry = register_model(name, dest, {**keep, **info}, root)
    print(f"shipped {dest} ({sum(f['size'] for f in entry['files'].values()) / 1e6:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--renderer-report", type=Path, required=True)
    ap.add_argument("--landmarks-report", type=Path, required=True)
    ap.add_argument("--steps", type=int, required=True, help="the renderer's default denoising steps")
    ap.add_argument("--hardware", default="2-core CPU (no GPU)")
    args = ap.parse_args()
    root = weights_root()
    previous = read_manifest(root)["models"]
    joint = _joint_record(args.run, args.hardware)
    renderer = FaceRenderer.from_pretrained(args.run / "model" / "renderer")
    renderer.default_steps = args.steps
    r_report = json.loads(args.renderer_report.read_text())
    l_report = json.loads(args.landmarks_report.read_text())
    _ship(
        RENDERER_MODEL,
        renderer,
        root / RENDERER_MODEL,
        previous[RENDERER_MODEL],
        {
            "training": {**joint, "fine_tuned_from": previous[RENDERER_MODEL]["training"]},
            "metrics": renderer_metrics(r_report),
            "bars": r_report.get("bars", {}),
            "default_steps": args.steps,
            "eval": f"dub eval renderer --data CACHE --steps {r_report['steps']} (dev split)",
        },
        root,
    )
    landmarks = LandmarkCompleter.from_pretrained(args.run / "model" / "landmarks")
    _ship(
        LANDMARKS_MODEL,
        landmarks,
        root / LANDMARKS_MODEL,
        previous[LANDMARKS_MODEL],
        {
            "training": {**joint, "fine_tuned_from": previous[LANDMARKS_MODEL]["training"]},
            "metrics": landmark_metrics(l_report),
            "bars": l_report.get("bars", {}),
        },
        root,
    )


if __name__ == "__main__":
    main()
