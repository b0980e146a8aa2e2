"""Estimate each prepared clip's audio-video offset with a landmark completer (docs/LANDMARKS.md).

    .venv/bin/python tools/sync_offsets.py ../cache/prep --split dev [--weights weights/default/landmarks]
        [--min-seconds 2] [--max-offset 0.24] [--report offsets.json]

Per clip: the mouth opening the completer predicts from the clip's own sound, correlated with the opening tracked on
its picture at every shift within +-max-offset; the best shift (positive: the prediction, hence the sound, is late)
and the correlations with no shift and at the best one. A completer trained on a clip is biased towards finding it
in sync, so read train-split offsets as lower bounds.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from dubber.data.cache import PrepCache
from dubber.evaluation.metrics import lagged_correlation
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_sequence import predict_sequence
from dubber.training.landmark_data import content_opening, load_clips, reference_indices, speech_input


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--weights", type=Path, default=Path("weights/default/landmarks"))
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--max-offset", type=float, default=0.24, help="seconds searched either side")
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    model = LandmarkCompleter.from_pretrained(args.weights).eval()
    rows = []
    cache = PrepCache(args.cache)
    for clip in load_clips(cache, args.split, min_frames=model.config.window, speech=speech_input(model.config)):
        if clip.seconds < args.min_seconds:
            continue
        refs = clip.points[reference_indices(clip, model.config.n_refs, None)]
        pred = predict_sequence(model, clip.mel_windows.astype(np.float32), clip.pose, refs)
        opening = np.where(clip.usable, content_opening(pred), np.nan)
        truth = np.where(clip.usable, clip.opening, np.nan)
        fps = 1.0 / float(np.median(np.diff(clip.times)))
        offset, best = lagged_correlation(opening, truth, max(1, round(args.max_offset * fps)))
        _, plain = lagged_correlation(opening, truth, 0)
        row = {
            "clip": clip.clip_id,
            "speaker": clip.speaker,
            "seconds": round(clip.seconds, 2),
            "fps": round(fps, 3),
            "offset_frames": offset,
            "offset_ms": round(1000 * offset / fps),
            "corr": plain,
            "corr_best": best,
        }
        rows.append(row)
        print(json.dumps(row))
    summary = {
        "clips": len(rows),
        "offset_frames": dict(sorted(Counter(r["offset_frames"] for r in rows).items())),
        "mean_corr": float(np.mean([r["corr"] for r in rows if r["corr"] is not None])) if rows else None,
        "mean_corr_best": float(np.mean([r["corr_best"] for r in rows if r["corr_best"] is not None]))
        if rows
        else None,
        "command": f"tools/sync_offsets.py {args.cache} --split {args.split} --weights {args.weights} "
        f"--min-seconds {args.min_seconds:g} --max-offset {args.max_offset:g}",
    }
    print(json.dumps(summary, indent=1))
    if args.report:
        args.report.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
