"""Foundation benchmark: decode speed, face-tracking cost, and peak memory against video length.

    make bench            # or: .venv/bin/python benchmarks/bench_foundation.py [--data ../shared/data] [--quick]

1. Decode frames/s and face-tracking ms/frame on a 720p and a 1080p clip of ../shared/data (when present).
2. Peak resident memory of reader -> tracker -> writer over generated 1080p videos of 30 s and 120 s, each run in
   its own process (os.wait4 gives that child's own peak). Streaming means the two peaks should match.
The 1080p test videos loop a real 1080p clip when the shared data is there (so the tracker has a face to follow),
else a synthetic pattern. Results go to stdout as JSON and to benchmarks/results/foundation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from dubber.media import VideoEncodeOptions, VideoReader, VideoWriter

ROOT = Path(__file__).resolve().parents[1]


def _clip(data: Path, height: int) -> Path | None:
    import csv

    manifest = data / "manifest.csv"
    if not manifest.exists():
        return None
    rows = [r for r in csv.DictReader(manifest.open()) if int(r["height"]) == height and r["split"] in ("train", "dev")]
    rows.sort(key=lambda r: -float(r["seconds"]))
    return data / rows[0]["path"] if rows else None


def bench_clip(path: Path) -> dict:
    from dubber.face import FaceTracker

    reader = VideoReader(path)
    t0 = time.perf_counter()
    n = sum(1 for _ in reader)
    decode_s = time.perf_counter() - t0
    track_s = 0.0
    faces = 0
    with FaceTracker() as tracker:
        for frame in reader:
            t = time.perf_counter()
            faces += tracker.step(frame).face is not None
            track_s += time.perf_counter() - t
    return {
        "clip": str(path.relative_to(path.parents[2])),
        "size": f"{reader.size[0]}x{reader.size[1]}",
        "frames": n,
        "decode_fps": round(n / decode_s, 1),
        "track_ms_per_frame": round(1000 * track_s / n, 2),
        "face_ratio": round(faces / n, 3),
    }


def make_long_video(dest: Path, seconds: int, source: Path | None) -> None:
    fps = Fraction(25)
    total = seconds * 25
    with VideoWriter(
        dest, width=1920, height=1080, fps=fps, options=VideoEncodeOptions(crf=23, preset="ultrafast"), overwrite=True
    ) as w:
        written = 0
        if source is not None:
            while written < total:
                for frame in VideoReader(source):
                    if written >= total:
                        break
                    w.write(frame.image)
                    written += 1
        else:
            y, x = np.mgrid[0:1080, 0:1920]
            for i in range(total):
                w.write(np.dstack([(x + 4 * i) % 256, (y + 2 * i) % 256, (x + y) % 256]).astype(np.uint8))


def pipeline_child(src: str, dst: str) -> None:
    """reader -> tracker -> writer; prints frames and seconds as JSON."""
    from dubber.face import FaceTracker
    from dubber.media import AudioFromFile

    reader = VideoReader(src)
    t0 = time.perf_counter()
    n = 0
    with (
        FaceTracker() as tracker,
        VideoWriter(
            dst,
            width=reader.size[0],
            height=reader.size[1],
            fps=reader.fps,
            time_base=reader.info.time_base,
            options=VideoEncodeOptions(crf=18, preset="veryfast"),
            audio=AudioFromFile(Path(src)) if reader.media.audio else None,
            overwrite=True,
        ) as writer,
    ):
        for step in tracker.track(reader):
            writer.write(step.frame.image)
            n += 1
    print(json.dumps({"frames": n, "seconds": time.perf_counter() - t0}))


def run_child(src: Path, dst: Path) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(src), str(dst)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = json.loads(proc.stdout.read())
    proc.stdout.close()
    if status != 0:
        raise SystemExit(f"child failed with status {status}")
    return {
        "frames": out["frames"],
        "fps": round(out["frames"] / out["seconds"], 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--quick", action="store_true", help="10 s and 40 s instead of 30 s and 120 s")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        pipeline_child(*args.child)
        return
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "clips": [],
        "memory": [],
    }
    for height in (720, 1080):
        clip = _clip(args.data, height)
        if clip is not None:
            results["clips"].append(bench_clip(clip))
            print(json.dumps(results["clips"][-1]), file=sys.stderr)
    source = _clip(args.data, 1080)
    lengths = (10, 40) if args.quick else (30, 120)
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in lengths:
            src = Path(tmp) / f"long{seconds}.mp4"
            make_long_video(src, seconds, source)
            row = {"seconds": seconds, **run_child(src, Path(tmp) / f"out{seconds}.mp4")}
            results["memory"].append(row)
            print(json.dumps(row), file=sys.stderr)
    short, long = results["memory"]
    results["memory_ratio_long_vs_short"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)
    out = ROOT / "benchmarks" / "results" / "foundation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
