"""Ship a trained renderer (its EMA weights): fp16 copy into weights/default/renderer and a manifest entry.

    python scripts/ship_renderer.py RUN_DIR/model --run RUN_DIR --report eval.json [--steps 1] [--fine-tuned]

MODEL_DIR is a renderer folder (renderer.json + unet/) written by `dub train renderer` (RUN/model) or
`dub train joint` (RUN/model/renderer); RUN is the run that trained it (config.json, model/training.json); the report
is what `dub eval renderer --report` wrote for that model. ``--steps`` sets the default denoising steps;
``--fine-tuned`` records the shipped renderer's training as what this run started from (``--init-from``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from dubber.render.renderer_pipeline import FaceRenderer
from dubber.weights import RENDERER_MODEL, read_manifest, register_model, weights_root


def renderer_metrics(report: dict) -> dict[str, float]:
    """The manifest's metrics from a `dub eval renderer --report` file."""
    metrics = {}
    for group, methods in report["groups"].items():
        for method, s in methods.items():
            for key in ("psnr", "ssim", "lmd"):
                if s.get(key) is not None:
                    metrics[f"{group}_{method}_{key}"] = round(float(s[key]), 5)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--hardware", default="2-core CPU (no GPU)")
    ap.add_argument("--note", default="")
    ap.add_argument("--steps", type=int, default=None, help="the default denoising steps (default: the model's)")
    ap.add_argument("--fine-tuned", action="store_true", help="the run started from the shipped renderer")
    args = ap.parse_args()
    run_cfg = json.loads((args.run / "config.json").read_text())
    training = json.loads((args.run / "model" / "training.json").read_text())
    report = json.loads(args.report.read_text())
    root = weights_root()
    dest = root / RENDERER_MODEL
    renderer = FaceRenderer.from_pretrained(args.model)
    if args.steps is not None:
        renderer.default_steps = args.steps
    previous = read_manifest(root)["models"].get(RENDERER_MODEL, {}).get("training") if args.fine_tuned else None
    if dest.exists():
        shutil.rmtree(dest)
    renderer.save_pretrained(dest, dtype=torch.float16)
    metrics = renderer_metrics(report)
    cfg = run_cfg["train"]
    info = {
        "component": "diffusion renderer with TalkFormer conditioning (docs/ARCHITECTURE.md §6), EMA weights",
        "config": {k: run_cfg["model"][k] for k in ("sample_size", "patch", "block_channels", "n_refs")},
        "config_name": cfg["model"],
        "dtype": "float16",
        "scheduler": renderer.scheduler_name,
        "training": {
            "data": f"../shared/data {' + '.join(cfg['splits'])} splits: {run_cfg['train_clips']} clips, "
            f"{len(run_cfg['train_speakers'])} speakers, {run_cfg['train_frames']} frames (at most "
            f"{cfg['max_frames_per_clip']} per clip)",
            "steps": training["trained_steps"],
            "minutes": training["train_minutes"],
            "hardware": args.hardware,
            "command": f"dub train renderer --data CACHE --out RUN --model {cfg['model']} --max-steps "
            f"{cfg['max_steps']} --lr {cfg['lr']} --own-jitter {cfg.get('own_jitter', 1.0)} --eval-every "
            f"{cfg['eval_every']}" + (" --init-from SHIPPED_RENDERER" if cfg.get("init_from") else ""),
            "settings": {k: v for k, v in cfg.items() if k != "init_from"},
            "note": args.note,
            **({"fine_tuned_from": previous} if previous else {}),
        },
        "default_steps": renderer.default_steps,
        "metrics": metrics,
        "eval": f"dub eval renderer --data CACHE --steps {report['steps']} (dev split)",
        "bars": report.get("bars", {}),
        "licence": "Apache-2.0 for the weights; trained on research datasets, several research-only "
        "(GRID CC BY 4.0, MEAD, LRS3, CREMA-D, HDTF, DFDC...): see ../shared/data/manifest.csv licence column",
    }
    entry = register_model(RENDERER_MODEL, dest, info, root)
    size = sum(f["size"] for f in entry["files"].values())
    print(f"shipped {dest} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
