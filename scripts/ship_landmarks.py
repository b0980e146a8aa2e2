"""Ship a trained landmark completer: fp16 copy into weights/default/landmarks and a manifest entry.

    python scripts/ship_landmarks.py RUN_DIR --report eval.json [--hardware "2-core CPU"]
    python scripts/ship_landmarks.py MEL_RUN SPEECH_RUN --weight 0.7 0.3 --report eval.json   # an ensemble
    python scripts/ship_landmarks.py MEL_RUN SPEECH_RUN SPEECH_RUN2 --weight 0.5 0.25 0.25 ...  # speech, speech_2

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
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.training.landmark_trainer import LandmarkTrainConfig
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


def training_info(run: Path, hardware: str, previous: dict | None = None) -> dict:
    """The manifest's training record of one `dub train landmarks` run (``previous``: the manifest's record of the
    same run when it is shipped again, whose hardware note is kept)."""
    run_cfg = json.loads((run / "config.json").read_text())
    model_cfg = json.loads((run / "model" / "config.json").read_text())
    train = run_cfg["train"]
    return {
        "data": "../shared/data train split: "
        f"{run_cfg['train_clips']} clips, {len(run_cfg['train_speakers'])} speakers "
        "(GRID, HDTF, MEAD, LRS3, CREMA-D, TMSV and interview footage; 50 of the 53 minutes are GRID speaker s1)",
        "steps": model_cfg.get("trained_steps"),
        "minutes": model_cfg.get("train_minutes"),
        "hardware": (previous or {}).get("hardware", hardware),
        "command": "dub train landmarks --data CACHE --out RUN " + recipe_arguments(train),
        "settings": train,
        "config": {
            k: model_cfg[k]
            for k in ("d_model", "n_layers", "n_heads", "ff_dim", "audio_input", "speech_encoder", "base")
            if k in model_cfg
        },
    }


def recipe_arguments(train: dict) -> str:
    """The run's settings that differ from the defaults, as ``--set KEY=VALUE`` arguments."""
    defaults = LandmarkTrainConfig().to_dict()
    changed = {k: v for k, v in train.items() if k in defaults and v != defaults[k] and k != "checkpoint_minutes"}
    return " ".join(f"--set {k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in changed.items())


def shipped_runs(root: Path) -> dict[str, dict]:
    """Run name -> its training record in the manifest's current landmark model (members or the single model)."""
    try:
        entry = json.loads((root / "manifest.json").read_text())["models"][LANDMARKS_MODEL]
    except (OSError, ValueError, KeyError):
        return {}
    records = list(entry.get("members", {}).values()) or [entry.get("training", {})]
    return {r["run"]: r for r in records if "run" in r}


def member_names(audio_inputs: list[str]) -> list[str]:
    """Member folder names: the audio input, numbered from the second member that shares it (speech, speech_2)."""
    seen: dict[str, int] = {}
    names = []
    for audio in audio_inputs:
        base = audio.replace("+", "_")
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path, nargs="+", help="one run, or several to ship as an ensemble")
    ap.add_argument("--weight", type=float, nargs="*", help="with several runs: each one's weight in the ensemble")
    ap.add_argument("--report", type=Path, help="its `dub eval landmarks --report` (needed unless --out)")
    ap.add_argument("--out", type=Path, help="only write the model folder here (to evaluate it before shipping)")
    ap.add_argument("--hardware", default="2-core CPU (no GPU)")
    args = ap.parse_args()
    if args.out is None and args.report is None:
        raise SystemExit("--report is needed to ship (or --out to only write the folder)")
    root = weights_root()
    dest = args.out or root / LANDMARKS_MODEL
    if dest.exists():
        shutil.rmtree(dest)
    models = [LandmarkCompleter.from_pretrained(r / "model") for r in args.runs]
    shipped = shipped_runs(root)
    trainings = [training_info(r, args.hardware, shipped.get(r.name)) for r in args.runs]
    info = {"component": "landmark completer (docs/ARCHITECTURE.md §5)", "dtype": "float16"}
    if len(models) == 1:
        models[0].save_pretrained(dest, dtype=torch.float16)
        info["config"] = trainings[0].pop("config")
        info["training"] = trainings[0]
    else:
        if not args.weight or len(args.weight) != len(models):
            raise SystemExit("give one --weight per run")
        names = member_names([m.config.audio_input for m in models])
        weights = dict(zip(names, args.weight, strict=True))
        LandmarkEnsemble(dict(zip(names, models, strict=True)), weights).save_pretrained(dest, dtype=torch.float16)
        info["config"] = {"ensemble": weights}
        info["members"] = {n: {**t, "run": r.name} for n, t, r in zip(names, trainings, args.runs, strict=True)}
    if args.out is not None:
        print(f"wrote {dest}")
        return
    report = json.loads(args.report.read_text())
    info |= {
        "metrics": landmark_metrics(report),
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
