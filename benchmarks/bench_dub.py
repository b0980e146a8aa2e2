"""End-to-end dub speed at 720p and peak memory against video length, on media this script makes itself.

    make bench-dub    # or: .venv/bin/python benchmarks/bench_dub.py [--steps 8] [--speed-seconds 10]
                      #                                             [--memory-seconds 30,120] [--memory-steps 1]

1. speed: a 1280x720, 25 fps clip of the public-domain astronaut portrait (moving, as footage does) dubbed with the
   demo speech by ``dub bench`` (frames/s per stage and end to end, and the ratio to a plain decode + encode of the
   same clip, measured in the same run);
2. memory: the same kind of clip at each length in ``--memory-seconds``, each dubbed in a fresh process (peak RSS is
   per process), at ``--memory-steps`` (the step count changes time, not memory).
``--height 1080`` makes the speed clip 1920x1080 (the portrait 1.5 times larger). Results go to stdout and to
benchmarks/results/dub_<device>.json (dub_<device>_1080p.json at 1080).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 1280, 720, 25


def make_clip(path: Path, seconds: float, height: int = H) -> Path:
    """The astronaut's head and shoulders, 330 px tall, swaying and drifting across a 720p frame (at ``height``
    1080, everything 1.5 times larger)."""
    from skimage import data

    from dubber.media import VideoWriter
    from dubber.media.encode_options import VideoEncodeOptions

    k = height / H
    width, side = int(round(W * k)) // 2 * 2, int(round(330 * k))
    portrait = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), (96, 110, 128), np.uint8)
    n = int(round(seconds * FPS))
    with VideoWriter(
        path,
        width=width,
        height=height,
        fps=Fraction(FPS),
        options=VideoEncodeOptions(crf=16, preset="veryfast"),
        overwrite=True,
    ) as writer:
        for i in range(n):
            t = i / FPS
            m = cv2.getRotationMatrix2D((165.0 * k, 120.0 * k), 4.0 * np.sin(t * 1.3), 1.0)
            m[:, 2] += ((475 + 60 * np.sin(t * 0.4)) * k, (200 + 15 * np.sin(t * 0.9)) * k)
            frame = cv2.warpAffine(portrait, m, (width, height), dst=canvas.copy(), borderMode=cv2.BORDER_TRANSPARENT)
            writer.write(frame)
    return path


def make_speech(path: Path, seconds: float) -> Path:
    """The demo speech, repeated to ``seconds``."""
    from dubber.media import decode_audio, write_wav

    speech = decode_audio(ROOT / "examples" / "speech.wav", sample_rate=16000)
    reps = int(np.ceil(seconds / speech.duration))
    return write_wav(path, np.tile(speech.mono, reps)[: int(seconds * 16000)], 16000)


def dub_bench(video: Path, audio: Path, steps: int, device: str, weights: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "dubber",
        "bench",
        str(video),
        "--audio",
        str(audio),
        "--steps",
        str(steps),
        "--device",
        device,
        "--weights",
        weights,
        "--json",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--speed-seconds", type=float, default=10.0)
    ap.add_argument("--memory-seconds", default="30,120", help="comma-separated clip lengths; empty: skip")
    ap.add_argument("--memory-steps", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default="default")
    ap.add_argument("--height", type=int, default=H, help="the speed clip's height: 720 or 1080")
    ap.add_argument("--clip-out", type=Path, default=None, help="also keep the speed clip here")
    args = ap.parse_args()
    report: dict = {"machine": platform.processor() or platform.machine(), "device": args.device, "height": args.height}
    with tempfile.TemporaryDirectory(prefix="bench-dub-") as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "speed.mp4", args.speed_seconds, args.height)
        speech = make_speech(tmp / "speed.wav", args.speed_seconds)
        if args.clip_out is not None:
            shutil.copyfile(clip, args.clip_out)
        report["speed"] = dub_bench(clip, speech, args.steps, args.device, args.weights)
        print(json.dumps({"speed": report["speed"]}))
        memory = {}
        for seconds in [float(s) for s in args.memory_seconds.split(",") if s.strip()]:
            clip = make_clip(tmp / "memory.mp4", seconds)
            speech = make_speech(tmp / "memory.wav", seconds)
            r = dub_bench(clip, speech, args.memory_steps, args.device, args.weights)
            memory[f"{seconds:g}s"] = {
                "frames": r["frames"],
                "peak_rss_mb": r["peak_rss_mb"],
                "end_to_end_fps": r["end_to_end_fps"],
            }
            print(json.dumps({f"memory_{seconds:g}s": memory[f"{seconds:g}s"]}))
        if len(memory) >= 2:
            peaks = [m["peak_rss_mb"] for m in memory.values()]
            memory["longest_over_shortest"] = round(peaks[-1] / peaks[0], 4)
        report["memory"] = memory
    size = "" if args.height == H else f"_{args.height}p"
    out = ROOT / "benchmarks" / "results" / f"dub_{args.device.split(':')[0]}{size}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
