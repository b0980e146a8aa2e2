"""End-to-end dub speed at 720p on real talking clips and the synthetic one, idle and beside a CPU-bound process,
against a plain re-encode of the same clip in the same run (``dub bench``, default settings).

    make bench-throughput   # or: .venv/bin/python benchmarks/bench_throughput.py [--baseline DIR] [--rounds 1]

Clips: the generated 1280x720 astronaut clip (benchmarks/bench_dub.py) with the demo speech, and, when
../shared/data is present, real talking clips scaled to 1280x720 and dubbed with their own speech. Each clip is
dubbed by ``dub bench`` in a fresh process: idle, then with one CPU-bound process (a busy loop) running beside it.
``--baseline DIR``: also run the checkout of another version at DIR (its ``dubber`` package) on the same clips,
alternating with this one, so that both are measured on the same host at the same time (the host of a virtual
machine changes between runs). Results go to stdout and benchmarks/results/throughput_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REAL_CLIPS = {  # speaker -> clip under ../shared/data; all dev or train clips of people talking
    "restaurant_man (720p)": "train/visualvoice_restaurant_man/VisualVoice__noisy_restaurant.mp4",
    "mead_M026 (1080p -> 720p)": "dev/mead_M026/spectre__M026_level_3_disgusted_018.mp4",
    "tmsv_SP05 (1080p 50 fps -> 720p)": "dev/tmsv_SP05/LAVSE__SP05_320.mp4",
}
BUSY_LOOP = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def scale_to_720p(src: Path, dest: Path) -> Path:
    """``src``'s frames resized to 1280x720 (the aspect kept by padding), at its frame rate, with its own audio (a
    dub reads the video's own speech: the articulation spread)."""
    from dubber.media import VideoReader, VideoWriter
    from dubber.media.audio_feed import AudioFromFile
    from dubber.media.encode_options import VideoEncodeOptions

    reader = VideoReader(src)
    w, h = reader.size
    scale = min(1280 / w, 720 / h)
    size = (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2)
    x0, y0 = (1280 - size[0]) // 2, (720 - size[1]) // 2
    with VideoWriter(
        dest,
        width=1280,
        height=720,
        fps=Fraction(reader.fps),
        options=VideoEncodeOptions(crf=16, preset="veryfast"),
        audio=AudioFromFile(src),
    ) as writer:
        for frame in reader:
            canvas = cv2.copyMakeBorder(
                cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA),
                y0,
                720 - size[1] - y0,
                x0,
                1280 - size[0] - x0,
                cv2.BORDER_CONSTANT,
            )
            writer.write(canvas)
    return dest


def dub_bench(video: Path, audio: Path, code: Path | None) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    cmd = [sys.executable, "-m", "dubber", "bench", str(video), "--audio", str(audio), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=code or ROOT)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["speed_vs_reencode"] = round(r["end_to_end_fps"] / r["plain_reencode_fps"], 3)
    return r


def contended(video: Path, audio: Path, code: Path | None) -> dict:
    """The same, with a CPU-bound process running beside it."""
    burner = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        return dub_bench(video, audio, code)
    finally:
        burner.kill()
        burner.wait()


def summary(r: dict) -> dict:
    keys = (
        "end_to_end_fps",
        "plain_reencode_fps",
        "speed_vs_reencode",
        "overlap",
        "wall_seconds",
        "stage_seconds",
        "cpu_ms_per_frame",
        "reencode_cpu_ms_per_frame",
        "cores_busy",
        "phases",
    )
    return {k: r.get(k) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout of another version to compare with")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-contention", action="store_true", help="skip the runs beside a CPU-bound process")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_dub import make_clip, make_speech

    versions = {"this": None, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    report: dict = {
        "command": "python benchmarks/bench_throughput.py" + (f" --baseline {args.baseline}" if args.baseline else ""),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "clips": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        tmp = Path(tmp)
        clips = {
            "astronaut (generated 720p)": (make_clip(tmp / "astronaut.mp4", 10.0), make_speech(tmp / "s.wav", 10.0))
        }
        for name, rel in REAL_CLIPS.items():
            src = SHARED / rel
            if src.is_file():
                clips[name] = (scale_to_720p(src, tmp / f"{src.stem}.720p.mp4"), src)
        for name, (video, audio) in clips.items():
            entry = report["clips"].setdefault(name, {})
            for _ in range(args.rounds):
                for version, code in versions.items():
                    runs = entry.setdefault(version, {"idle": [], "contended": []})
                    runs["idle"].append(summary(dub_bench(video, audio, code)))
                    if not args.no_contention:
                        runs["contended"].append(summary(contended(video, audio, code)))
                    idle = runs["idle"][-1]
                    line = f"{name:34s} {version:8s} idle {idle['end_to_end_fps']:6.2f} fps"
                    line += f" ({idle['speed_vs_reencode']:.3f}x re-encode, overlap {idle.get('overlap') or 0:.2f})"
                    if not args.no_contention:
                        busy = runs["contended"][-1]
                        line += f"  beside a busy process {busy['end_to_end_fps']:6.2f} fps"
                        line += f" ({busy['end_to_end_fps'] / idle['end_to_end_fps']:.2f} of idle)"
                    print(line, flush=True)
    out = ROOT / "benchmarks" / "results" / "throughput_cpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
