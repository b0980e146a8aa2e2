"""Pass 1's tracker with a lost face looked for where it was (the default) against chosen by size at once
(``refind_seconds=0``), over the shared clips: whether each clip's track changes, and on clips of several faces in
one shot how often the followed face jumps across the frame.

    python scripts/face_refind.py --out benchmarks/results/face_refind.json

Clips: the dev and wild splits, the long held-out clips (benchmarks/split_long_clips.csv) and the train split's
two-person interview (train/visualvoice_interview_2spk).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from dubber.face.tracker import FaceTracker, TrackerOptions
from dubber.media.video_reader import VideoReader

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def clips() -> list[Path]:
    rows = list(csv.DictReader((DATA / "manifest.csv").open()))
    paths = [DATA / r["path"] for r in rows if r["split"] in ("dev", "wild")]
    paths += sorted((DATA / "train" / "visualvoice_interview_2spk").glob("*.mp4"))
    long = REPO / "benchmarks" / "split_long_clips.csv"
    paths += [(long.parent / r["path"]).resolve() for r in csv.DictReader(long.open())]
    return list(dict.fromkeys(p for p in paths if p.exists()))


def track(path: Path, refind_seconds: float) -> dict:
    tracker = FaceTracker(options=TrackerOptions(refind_seconds=refind_seconds))
    points, xs, found = [], [], 0
    try:
        for step in tracker.track(VideoReader(path).frames()):
            points.append(None if step.face is None else step.face.points)
            xs.append(np.nan if step.face is None else step.face.box.center[0])
            found += step.reacquired
    finally:
        tracker.close()
    width = VideoReader(path).size[0]
    jumps = np.flatnonzero(np.abs(np.diff(np.asarray(xs))) > 0.2 * width) + 1  # across a fifth of the frame
    return {"points": points, "faces": tracker.most_faces, "reacquired": found, "jumps": jumps.tolist()}


def same(a: list, b: list) -> bool:
    return all((p is None) == (q is None) and (p is None or np.array_equal(p, q)) for p, q in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = []
    for path in clips():
        size, refind = track(path, 0.0), track(path, TrackerOptions().refind_seconds)
        row = {
            "clip": str(path.relative_to(DATA)) if path.is_relative_to(DATA) else str(path),
            "frames": len(size["points"]),
            "most_faces": refind["faces"],
            "same_track": same(size["points"], refind["points"]),
            "jumps_by_size": size["jumps"],
            "jumps_refound": refind["jumps"],
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    summary = {
        "clips": len(results),
        "same_track": sum(r["same_track"] for r in results),
        "clips_of_several_faces": sum(r["most_faces"] > 1 for r in results),
    }
    print(json.dumps(summary))
    args.out.write_text(json.dumps({"summary": summary, "clips": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
