"""torch against onnxruntime: the same dubs with ``--runtime torch`` and ``--runtime onnx``, in one run.

    make bench-runtimes   # or: .venv/bin/python benchmarks/bench_runtimes.py [--steps 1,8] [--seconds 10] [--rounds 2]

The generated 1280x720 astronaut clip (benchmarks/bench_dub.py) and, when ../shared/data is there, a real 720p
talking clip, each dubbed by ``dub bench`` in a fresh process per runtime and step count; the runtimes alternate and
each pair is repeated ``--rounds`` times (the best of the rounds is kept), so that both see the same host. The ONNX
export is made once beforehand (``dub export onnx``), as ``--runtime onnx`` does into its cache on a first dub.
Results go to stdout and to benchmarks/results/runtimes_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dub import make_clip, make_speech  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIP = ROOT.parent / "shared" / "data" / "train" / "visualvoice_restaurant_man"


def bench(video: Path, audio: Path, steps: int, runtime: str, weights: str) -> dict:
    cmd = [sys.executable, "-m", "dubber", "bench", str(video), "--audio", str(audio), "--steps", str(steps)]
    cmd += ["--device", "cpu", "--runtime", runtime, "--weights", weights, "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="1,8")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    report: dict = {"machine": platform.processor() or platform.machine(), "clips": {}}
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
        tmp = Path(tmp)
        export = tmp / "onnx"
        subprocess.run([sys.executable, "-m", "dubber", "export", "onnx", "-o", str(export)], check=True)
        speech = make_speech(tmp / "speech.wav", args.seconds)
        clips = {"generated 1280x720": make_clip(tmp / "clip.mp4", args.seconds)}
        real = sorted(REAL_CLIP.glob("*.mp4"))
        if real:
            clips[f"{REAL_CLIP.name} (real)"] = real[0]
        for name, clip in clips.items():
            rows = {}
            for steps in [int(s) for s in args.steps.split(",")]:
                best: dict[str, dict] = {}
                for _ in range(args.rounds):
                    for runtime, weights in (("torch", "default"), ("onnx", str(export))):
                        r = bench(clip, speech, steps, runtime, weights)
                        if runtime not in best or r["end_to_end_fps"] > best[runtime]["end_to_end_fps"]:
                            best[runtime] = r
                rows[f"{steps} steps"] = {
                    rt: {k: r[k] for k in ("frames", "end_to_end_fps", "plain_reencode_fps", "stage_fps")}
                    for rt, r in best.items()
                }
                rows[f"{steps} steps"]["onnx_over_torch"] = round(
                    best["onnx"]["end_to_end_fps"] / best["torch"]["end_to_end_fps"], 3
                )
                print(json.dumps({name: {f"{steps} steps": rows[f"{steps} steps"]}}))
            report["clips"][name] = rows
    out = ROOT / "benchmarks" / "results" / "runtimes_cpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
