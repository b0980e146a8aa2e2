"""Ship a trained landmark completer: fp16 copy into weights/default/landmarks and a manifest entry.

    python tools/ship_landmarks.py RUN_DIR --report eval.json [--hardware "2-core CPU"]

RUN_DIR is a `dub train landmarks` run (its model/, config.json and log.jsonl); the report is the JSON that
`dub eval landmarks --report` wrote for that model. The manifest entry records the sha256 and size of each file,
the training data and duration, and the dev metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from dubber.models.landmark_completer import LandmarkCompleter
from dubber.weights import LANDMARKS_MODEL, register_model, weights_root


def landmark_metrics(report: dict) -> dict[str, float]:
    """The manifest's metrics from a `dub eval landmarks --report` file."""
    unseen = report["groups"].get("unseen", {})
    seen = report["groups"].get("seen (held-out clips)", {})
    metrics = {}
    for prefix, group in (("unseen", unseen), ("seen", seen)):
        for method in ("model", "static_mean", "silent_audio"):
            if method in group:
                for key in ("lmd", "lmd_io", "opening_corr"):
                    value = group[method][key]
                    if value is not None:
                        metrics[f"{prefix}_{method}_{key}"] = round(float(value), 5)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--hardware", default="2-core CPU (no GPU)")
    args = ap.parse_args()
    run_cfg = json.loads((args.run / "config.json").read_text())
    model_cfg = json.loads((args.run / "model" / "config.json").read_text())
    report = json.loads(args.report.read_text())
    root = weights_root()
    dest = root / LANDMARKS_MODEL
    if dest.exists():
        shutil.rmtree(dest)
    model = LandmarkCompleter.from_pretrained(args.run / "model")
    model.save_pretrained(dest, dtype=torch.float16)
    metrics = landmark_metrics(report)
    info = {
        "component": "landmark completer (DESIGN.md §5)",
        "config": model_cfg.get("d_model") and {k: model_cfg[k] for k in ("d_model", "n_layers", "n_heads", "ff_dim")},
        "dtype": "float16",
        "training": {
            "data": "../shared/data train split: "
            f"{run_cfg['train_clips']} clips, {len(run_cfg['train_speakers'])} speakers "
            "(GRID, HDTF, MEAD, LRS3, CREMA-D, TMSV and interview footage; 50 of the 53 minutes are GRID speaker s1)",
            "steps": model_cfg.get("trained_steps"),
            "minutes": model_cfg.get("train_minutes"),
            "hardware": args.hardware,
            "command": f"dub train landmarks --data CACHE --out RUN --model {run_cfg['train']['model']} "
            f"--max-steps {run_cfg['train']['max_steps']} --batch-size {run_cfg['train']['batch_size']} "
            f"--speaker-balance {run_cfg['train']['speaker_balance']} "
            f"--freq-warp {run_cfg['train'].get('freq_warp', 0.0)}",
            "settings": run_cfg["train"],
        },
        "metrics": metrics,
        "bars": report.get("bars", {}),
        "eval": "dub eval landmarks --data CACHE --align-dir ../shared/data/grid_s1_align (dev split)",
        "licence": "Apache-2.0 for the weights; trained on research datasets, several research-only "
        "(GRID CC BY 4.0, MEAD, LRS3, CREMA-D, HDTF...): see ../shared/data/manifest.csv licence column",
    }
    entry = register_model(LANDMARKS_MODEL, dest, info, root)
    size = sum(f["size"] for f in entry["files"].values())
    print(f"shipped {dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
