"""MediaPipe against insightface (SCRFD) as the face backend, on the dev clips of ../shared/data.

    .venv/bin/python benchmarks/bench_face_backends.py [--models .venv/share/scrfd] [--per-speaker 2]

Per backend, over the same clips: the share of frames the tracker found a face on, landmark jitter (the mean
second difference of the tracked pose points between frames, in inter-ocular units: how much they shake), tracking
ms/frame; and each detector alone on every 5th frame (share of frames with a face found, ms per call). Results to
stdout and benchmarks/results/face_backends_cpu.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def clips(per_speaker: int) -> list[Path]:
    with open(SHARED / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "dev"]
    out, seen = [], {}
    for r in rows:
        if seen.get(r["speaker"], 0) < per_speaker:
            seen[r["speaker"]] = seen.get(r["speaker"], 0) + 1
            out.append(SHARED / r["path"])
    return out


def jitter(points: list[np.ndarray]) -> float:
    """Mean |p[t-1] - 2 p[t] + p[t+1]| of the pose points over runs of consecutive tracked frames, over the
    inter-ocular distance."""
    from dubber.face.landmarks import LEFT_EYE, POSE_INDICES, RIGHT_EYE

    values = []
    for a, b, c in zip(points, points[1:], points[2:], strict=False):
        if a is None or b is None or c is None:
            continue
        iod = np.linalg.norm(b[RIGHT_EYE[0], :2] - b[LEFT_EYE[0], :2])
        second = a[list(POSE_INDICES), :2] - 2 * b[list(POSE_INDICES), :2] + c[list(POSE_INDICES), :2]
        values.append(np.linalg.norm(second, axis=1).mean() / iod)
    return float(np.mean(values)) if values else float("nan")


def measure(name: str, make, videos: list[Path]) -> dict:
    from dubber.face.tracker import FaceTracker
    from dubber.media import VideoReader

    found = frames = 0
    track_s = detect_s = 0.0
    detected = probes = 0
    jitters = []
    for video in videos:
        backend = make()
        points = []
        with FaceTracker(backend) as tracker:
            images = []
            for frame in VideoReader(video):
                t = time.perf_counter()
                face = tracker.step(frame).face
                track_s += time.perf_counter() - t
                frames += 1
                found += face is not None
                points.append(None if face is None else face.points)
                if frame.index % 5 == 0:
                    images.append(frame.image)
            for image in images:
                t = time.perf_counter()
                detected += bool(backend.detect(image))
                detect_s += time.perf_counter() - t
                probes += 1
        backend.close()
        jitters.append(jitter(points))
    return {
        "backend": name,
        "clips": len(videos),
        "frames": frames,
        "face_found": round(found / frames, 4),
        "jitter_iod": round(float(np.nanmean(jitters)), 5),
        "track_ms_per_frame": round(1000 * track_s / frames, 2),
        "detector_found": round(detected / probes, 4),
        "detector_ms": round(1000 * detect_s / probes, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(Path(sys.prefix) / "share" / "scrfd"))
    ap.add_argument("--per-speaker", type=int, default=2)
    args = ap.parse_args()
    from dubber.face.insightface_backend import InsightFaceBackend
    from dubber.face.mediapipe_backend import MediaPipeBackend

    videos = clips(args.per_speaker)
    rows = [
        measure("mediapipe", MediaPipeBackend, videos),
        measure("insightface", lambda: InsightFaceBackend(args.models), videos),
    ]
    for r in rows:
        print(json.dumps(r))
    out = ROOT / "benchmarks" / "results" / "face_backends_cpu.json"
    out.write_text(json.dumps({"models": args.models, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
