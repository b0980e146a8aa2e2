"""Where the opening correlation is lost: the slow and the fast part of the mouth's motion, per clip and per member.

    python tools/opening_bands_probe.py ../cache/prep [--weights FOLDER] [--seconds 0.5]

For each dev clip over 3 s of a speaker not in the train split, the correlation of the predicted mouth opening with
the true one (as `dub eval landmarks` reads it), then of their slow parts (a moving average over --seconds) and of
what is left (the fast, syllable-rate motion); for the ensemble and for each of its members alone.
docs/LANDMARKS.md ("Ninth session") quotes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from dubber.data.cache import PrepCache
from dubber.evaluation import landmark_eval
from dubber.evaluation.metrics import correlation
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.training.landmark_data import content_opening, reference_indices
from dubber.weights import load_landmark_model


def bands(pred: np.ndarray, truth: np.ndarray, frames: int) -> tuple[float, float, float]:
    """Correlation of the whole signals, of their moving averages over ``frames``, and of the remainders."""
    known = np.isfinite(truth)
    filled = np.where(known, truth, np.nanmean(truth))  # the average must not spread gaps; they are masked after
    slow_p, slow_t = uniform_filter1d(pred, frames), uniform_filter1d(filled, frames)
    fast_t = np.where(known, filled - slow_t, np.nan)
    return correlation(pred, truth), correlation(slow_p, slow_t), correlation(pred - slow_p, fast_t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="a completer or ensemble folder (default: shipped)")
    ap.add_argument("--seconds", type=float, default=0.5, help="the moving average's span")
    args = ap.parse_args()
    cache = PrepCache(args.cache)
    model = load_landmark_model(args.weights)
    train_speakers = {r.speaker for r in cache.records("train")}
    models = {"ensemble": model}
    if isinstance(model, LandmarkEnsemble):
        models.update(model.members)
    for name, m in models.items():
        clips, predict = landmark_eval._predictor(m, cache, "dev", 1)
        for clip in clips:
            if clip.speaker in train_speakers or clip.seconds <= 3.0:
                continue
            refs = clip.points[reference_indices(clip, m.config.n_refs, None)]
            pred = content_opening(predict(clip.clip_id, refs, silent=False))
            truth = np.where(clip.usable, clip.opening, np.nan)
            frames = max(1, round(args.seconds / float(np.median(np.diff(clip.times)))))
            plain, slow, fast = bands(pred, truth, frames)
            print(f"{name:10s} {clip.speaker:14s} plain {plain:.3f}  slow {slow:.3f}  fast {fast:.3f}", flush=True)


if __name__ == "__main__":
    main()
