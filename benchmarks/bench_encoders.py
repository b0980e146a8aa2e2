"""The output encoders the dub writes with: H.264 (.mp4, .mov, .mkv) and VP9 (.webm) at a few presets, each given
the same decoded frames through ``VideoWriter``: frames/s of the encode alone, the file's size and the mean PSNR of
its decoded frames against those given.

    make bench-encoders   # or: .venv/bin/python benchmarks/bench_encoders.py [--frames 90] [--presets medium,veryfast]

The clip: the real talking clip of bench_throughput.py scaled to 1280x720 when ../shared/data is present, else the
generated astronaut clip. Results go to stdout and benchmarks/results/encoders_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def encode(frames: list[np.ndarray], fps: Fraction, out: Path, preset: str, crf: int) -> dict:
    from dubber.evaluation.image_metrics import PSNR_CAP, psnr
    from dubber.media import VideoReader, VideoWriter
    from dubber.media.encode_options import VideoEncodeOptions

    height, width = frames[0].shape[:2]
    started = time.perf_counter()
    options = VideoEncodeOptions(crf=crf, preset=preset)
    with VideoWriter(out, width=width, height=height, fps=fps, options=options, overwrite=True) as writer:
        for image in frames:
            writer.write(image)
    seconds = time.perf_counter() - started
    decoded = [f.image for f in VideoReader(out)]
    return {
        "fps": round(len(frames) / seconds, 1),
        "kilobytes": out.stat().st_size // 1000,
        "psnr_db": round(float(np.mean([psnr(a, b, cap=PSNR_CAP) for a, b in zip(frames, decoded, strict=True)])), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--presets", default="medium,veryfast,slow")
    ap.add_argument("--crf", type=int, default=18)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_dub import make_clip
    from bench_throughput import REAL_CLIPS, SHARED, scale_to_720p

    from dubber.media import VideoReader

    presets = args.presets.split(",")
    report: dict = {
        "command": f"python benchmarks/bench_encoders.py --frames {args.frames} --presets {args.presets} "
        f"--crf {args.crf}",
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-encoders-") as tmp:
        tmp = Path(tmp)
        name, rel = next(iter(REAL_CLIPS.items()))
        if (SHARED / rel).is_file():
            video = scale_to_720p(SHARED / rel, tmp / "clip.720p.mp4")
        else:
            name, video = "astronaut (generated 720p)", make_clip(tmp / "astronaut.mp4", 4.0)
        reader = VideoReader(video)
        frames = [f.image for f, _ in zip(reader, range(args.frames), strict=False)]
        report["clip"], report["frames"] = name, len(frames)
        for suffix in (".mp4", ".webm"):
            for preset in presets:
                result = encode(frames, Fraction(reader.fps), tmp / f"out{suffix}", preset, args.crf)
                report["results"][f"{suffix[1:]} {preset}"] = result
                print(f"{suffix[1:]:5s} {preset:9s} {result}", flush=True)
    out = ROOT / "benchmarks" / "results" / "encoders_cpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
