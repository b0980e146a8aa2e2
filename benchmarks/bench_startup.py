"""What a user waits for around the dub itself: the `dub` command's wall time from start to exit, against the dub's
own time inside it (its ``--json`` ``timings.total``); the difference is the process's start (imports, the models
loaded) and its exit.

    make bench-startup   # or: .venv/bin/python benchmarks/bench_startup.py [--baseline DIR] [--rounds 3]

The clip: the real talking clip of bench_throughput.py scaled to 1280x720 (225 frames) dubbed with its own speech,
when ../shared/data is present, else the generated astronaut clip with the demo speech. Each run is a fresh
``python -m dubber CLIP --audio AUDIO -o OUT --json`` at default settings. ``--baseline DIR``: the checkout of another
version at DIR runs alternately with this one, so that both are measured on one host at one time. Results go to
stdout and benchmarks/results/startup_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_dub(video: Path, audio: Path, out: Path, code: Path | None) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    cmd = [sys.executable, "-m", "dubber", str(video), "--audio", str(audio), "-o", str(out), "--overwrite", "--json"]
    started = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=code or ROOT)
    wall = time.perf_counter() - started
    dub = json.loads(done.stdout.strip().splitlines()[-1])["timings"]["total"]
    return {"wall_seconds": round(wall, 2), "dub_seconds": round(dub, 2), "around_the_dub": round(wall - dub, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout of another version to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_dub import make_clip, make_speech
    from bench_throughput import REAL_CLIPS, SHARED, scale_to_720p

    versions = {"this": None, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    report: dict = {
        "command": "python benchmarks/bench_startup.py"
        + (f" --baseline {args.baseline}" if args.baseline else "")
        + f" --rounds {args.rounds}",
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "runs": {version: [] for version in versions},
    }
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        tmp = Path(tmp)
        name, rel = next(iter(REAL_CLIPS.items()))
        if (SHARED / rel).is_file():
            audio = SHARED / rel
            video = scale_to_720p(audio, tmp / "clip.720p.mp4")
        else:
            name = "astronaut (generated 720p)"
            video, audio = make_clip(tmp / "astronaut.mp4", 10.0), make_speech(tmp / "s.wav", 10.0)
        report["clip"] = name
        for _ in range(args.rounds):
            for version, code in versions.items():
                run = timed_dub(video, audio, tmp / "out.mp4", code)
                report["runs"][version].append(run)
                print(f"{version:8s} {run}", flush=True)
    report["median_around_the_dub"] = {
        v: statistics.median(r["around_the_dub"] for r in runs) for v, runs in report["runs"].items()
    }
    report["median_wall_seconds"] = {
        v: statistics.median(r["wall_seconds"] for r in runs) for v, runs in report["runs"].items()
    }
    out = ROOT / "benchmarks" / "results" / "startup_cpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
