"""Where does the mouth rest? The completer's opening around silence against the truth's.

    python tools/rest_probe.py ../cache/prep [--weights FOLDER] [--align-dir ../shared/data/grid_s1_align]

Two views (docs/LANDMARKS.md "Eleventh session"), both on the predictions `dub eval landmarks` scores:
- GRID s1's held-out sentences begin and end in silence: the mean opening over their first and last 25 frames,
  predicted and true, frame by frame, with the share of those frames inside the `sil` spans the silence bar reads.
- Pauses in the long unseen clips, found by a rule fixed before looking: a frame is quiet when the sound's RMS over
  the 40 ms around it is 30 dB under the clip's 95th percentile, a pause is a run of quiet frames of at least 0.25 s,
  ramped over 0.1 s at each end. Printed: the predicted and true opening in the pauses, and the opening correlation
  if the prediction were pulled there toward the clip's least-open reference (what "close the mouth in pauses"
  would do to the bar).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dubber.data.cache import PrepCache
from dubber.data.speech_cache import _clip_samples
from dubber.evaluation import landmark_eval
from dubber.evaluation.alignments import find_align, read_align, silence_mask
from dubber.evaluation.metrics import correlation
from dubber.training.landmark_data import content_opening, reference_indices
from dubber.weights import load_landmark_model

EDGE = 25


def pause_weights(samples: np.ndarray, times: np.ndarray, sample_rate: int = 16_000) -> np.ndarray:
    """(N,) 0-1: how far each frame is inside a pause (the rule in the module's docstring)."""
    half = int(0.02 * sample_rate)
    at = (times * sample_rate).astype(int)
    rms = np.array([np.sqrt(np.mean(samples[max(0, i - half) : i + half] ** 2) + 1e-12) for i in at])
    quiet = rms < np.percentile(rms, 95) * 10 ** (-30 / 20)
    fps = 1.0 / float(np.median(np.diff(times)))
    need, ramp = round(0.25 * fps), max(1, round(0.1 * fps))
    weights = np.zeros(len(quiet))
    start = None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= need:
                k = np.arange(start, i)
                weights[k] = np.minimum(1.0, np.minimum(k - start + 1, i - k) / ramp)
            start = None
    return weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="a completer or ensemble folder (default: shipped)")
    ap.add_argument("--align-dir", type=Path, default=Path("../shared/data/grid_s1_align"))
    args = ap.parse_args()
    cache = PrepCache(args.cache)
    model = load_landmark_model(args.weights)
    clips, predict = landmark_eval._predictor(model, cache, "dev", 1)
    train_speakers = {r.speaker for r in cache.records("train")}
    records = {r.clip_id: r for r in cache.records("dev")}
    np.set_printoptions(precision=3, linewidth=200, suppress=True)

    def opening(clip) -> tuple[np.ndarray, np.ndarray]:
        refs = reference_indices(clip, model.config.n_refs, None)
        return content_opening(predict(clip.clip_id, clip.points[refs], silent=False)), refs

    edges = {"first": ([], [], []), "last": ([], [], [])}
    for clip in clips:
        align = find_align(args.align_dir, clip.source)
        if clip.speaker != "grid_s1" or align is None or len(clip.times) < 2 * EDGE:
            continue
        pred, _ = opening(clip)
        sil = silence_mask(clip.times, read_align(align), 0.12) & clip.usable
        for name, part in (("first", slice(0, EDGE)), ("last", slice(-EDGE, None))):
            for store, values in zip(edges[name], (pred, clip.opening, sil.astype(float)), strict=True):
                store.append(values[part])
    for name, (pred, truth, sil) in edges.items():
        print(f"GRID s1 dev, {name} {EDGE} frames of {len(pred)} sentences")
        print("  predicted", np.nanmean(pred, 0))
        print("  true     ", np.nanmean(truth, 0))
        print("  in sil   ", np.mean(sil, 0))

    for clip in clips:
        if clip.speaker in train_speakers or clip.seconds <= landmark_eval.LandmarkEvalOptions().min_corr_seconds:
            continue
        pred, refs = opening(clip)
        weights = pause_weights(_clip_samples(records[clip.clip_id]), clip.times)
        known = clip.usable & np.isfinite(clip.opening)
        rest = float(np.nanmin(clip.opening[refs]))
        pulled = (1 - weights) * pred + weights * rest
        inside = weights > 0
        line = f"{clip.speaker}: {int(inside.sum())} of {len(weights)} frames in pauses"
        if inside.any():
            line += (
                f", opening there predicted {pred[inside].mean():.3f} true {np.nanmean(clip.opening[inside]):.3f}"
                f" (least-open reference {rest:.3f})"
            )
        line += (
            f"; correlation {correlation(pred[known], clip.opening[known]):.3f},"
            f" pulled to rest in pauses {correlation(pulled[known], clip.opening[known]):.3f}"
        )
        print(line)


if __name__ == "__main__":
    main()
