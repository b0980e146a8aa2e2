"""Pass 1's face tracking: one tracker over the whole video against several on consecutive segments at once
(``dubber.pipeline.parallel_tracking``), timed in one process, alternating, with how far the segments' points and
openings land from the one tracker's.

    .venv/bin/python benchmarks/bench_tracking.py CLIP [CLIP ...] [--workers 2,4] [--rounds 2]

Writes benchmarks/results/tracking_<cores>cores.json. The dub tracks in segments only from 8 cores on
(``tracking_workers``); this measures any count on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dubber.face import FaceAligner, FaceTracker
from dubber.face.backends import make_backend
from dubber.media import VideoReader
from dubber.pipeline.analysis import analyse_video
from dubber.pipeline.parallel_tracking import analyse_in_segments

ROOT = Path(__file__).resolve().parents[1]


def _tracker() -> FaceTracker:
    return FaceTracker(make_backend("mediapipe"))


def _one(clip: Path):
    with _tracker() as tracker:
        return analyse_video(VideoReader(clip), tracker, FaceAligner(128), overlap=True)


def measure(clip: Path, workers: list[int], rounds: int) -> dict:
    seconds: dict[str, list[float]] = {"1": [], **{str(k): [] for k in workers}}
    tracks = {}
    for _ in range(rounds):
        for k in [1, *workers]:
            t0 = time.perf_counter()
            tracks[k] = _one(clip) if k == 1 else analyse_in_segments(VideoReader(clip), _tracker, FaceAligner(128), k)
            seconds[str(k)].append(round(time.perf_counter() - t0, 3))
    base = tracks[1]
    face = base.has_face
    result = {"frames": base.frames, "seconds": seconds, "differences": {}}
    for k in workers:
        t = tracks[k]
        both = face & t.has_face
        result["differences"][str(k)] = {
            "same_faces": bool(np.array_equal(t.has_face, face)),
            "points_max_crop_px": round(float(np.abs(t.points[both] - base.points[both]).max() * 128), 3),
            "points_mean_crop_px": round(float(np.abs(t.points[both] - base.points[both]).mean() * 128), 4),
            "opening_correlation": round(float(np.corrcoef(t.opening[both], base.opening[both])[0, 1]), 5),
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--workers", default="2,4")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    workers = [int(k) for k in args.workers.split(",")]
    cores = len(os.sched_getaffinity(0))
    report = {
        "command": "python benchmarks/bench_tracking.py " + " ".join(str(c) for c in args.clips),
        "cores": cores,
        "clips": {c.name: measure(c, workers, args.rounds) for c in args.clips},
    }
    out = ROOT / "benchmarks" / "results" / f"tracking_{cores}cores.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
