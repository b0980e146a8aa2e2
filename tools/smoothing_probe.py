"""Would smoothing the predicted lip and jaw points over time help? A probe, not a feature.

    python tools/smoothing_probe.py ../cache/prep [--weights FOLDER] [--amounts 0,0.15,0.25]

Runs `dub eval landmarks` (``evaluate_landmarks``, GRID alignments from ../shared/data/grid_s1_align) with every
member's predicted sequence filtered by the kernel (a, 1 - 2a, a) over neighbouring frames (edges repeated), for each
amount a, and prints per amount the unseen speakers' LMD / static mean, opening correlation and velocity error, the
seen speaker's LMD / static mean and velocity error, and the silence opening. docs/LANDMARKS.md quotes its output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dubber.data.cache import PrepCache
from dubber.evaluation import landmark_eval
from dubber.weights import load_landmark_model


def smoothed(predict, amount: float):
    """``predict_sequence`` with its (T, points, 2) output filtered over time."""

    def run(*args, **kwargs):
        out = predict(*args, **kwargs)
        if amount == 0 or len(out) < 3:
            return out
        padded = np.concatenate([out[:1], out, out[-1:]], 0)
        return (amount * (padded[:-2] + padded[2:]) + (1 - 2 * amount) * padded[1:-1]).astype(out.dtype)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="a landmark folder (default: the shipped one)")
    ap.add_argument("--amounts", default="0,0.15,0.25")
    ap.add_argument("--align-dir", type=Path, default=Path("../shared/data/grid_s1_align"))
    args = ap.parse_args()
    model, cache = load_landmark_model(args.weights), PrepCache(args.cache)
    options = landmark_eval.LandmarkEvalOptions(align_dir=args.align_dir if args.align_dir.is_dir() else None)
    plain = landmark_eval.predict_sequence
    try:
        for amount in [float(a) for a in args.amounts.split(",")]:
            landmark_eval.predict_sequence = smoothed(plain, amount)
            report = landmark_eval.evaluate_landmarks(model, cache, options)
            row: dict = {"amount": amount}
            for group, key in (("unseen", "unseen"), ("seen (held-out clips)", "seen")):
                g = report.groups.get(group)
                if g:
                    m = g["model"]
                    row[key] = {"lmd_vs_static": round(m["lmd"] / g["static_mean"]["lmd"], 4),
                                "opening_corr": m["opening_corr"], "velocity_error": m["velocity_error"]}  # fmt: skip
            row["silence_opening"] = report.silence.get("predicted_opening") if report.silence else None
            print(json.dumps(row), flush=True)
    finally:
        landmark_eval.predict_sequence = plain


if __name__ == "__main__":
    main()
