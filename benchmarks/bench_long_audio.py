"""Peak memory against the length of the new audio, on speech this script makes itself.

    make bench-long-audio    # or: .venv/bin/python benchmarks/bench_long_audio.py [--minutes 5,60]

1. features: the shipped completers' input (mel and Whisper features) of the demo speech repeated to each length,
   computed the whole-clip way (``decode_audio`` + ``audio_features`` + ``encode_speech``, all in memory) and the
   way the dub computes it (``stream_features``: decoded and computed block by block, rows on disk), each in a fresh
   process (peak RSS is per process);
2. end to end: ``DubbingPipeline`` with the shipped weights dubbing a 4 s, 128x128 video without a face (so that
   the time goes to the audio, decoding and encoding, not the renderer) with each length of speech, ``fit="loop"``.
Results go to stdout and to benchmarks/results/long_audio_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Peak memory from VmHWM, which exec resets; ru_maxrss carries the parent's peak across fork and exec.
_PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
"""

_FEATURES = (
    _PEAK
    + """
import json, sys, time
from pathlib import Path
from dubber.weights import load_speech_encoder
wav, how = Path(sys.argv[1]), sys.argv[2]
encoder = load_speech_encoder("whisper-tiny.en")
start = peak_mb()
t0 = time.perf_counter()
if how == "whole":
    from dubber.audio.features import audio_features
    from dubber.audio.speech import encode_speech
    from dubber.media import decode_audio
    clip = decode_audio(wav)
    mel, speech = audio_features(clip), encode_speech(clip.mono, encoder, layer=3)
else:
    from dubber.audio.streaming import stream_features
    stream_features(wav, "mel+speech", encoder, layer=3).close()
print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "peak_rss_before_mb": start,
                  "peak_rss_mb": peak_mb()}))
"""
)

_DUB = (
    _PEAK
    + """
import json, sys, time
from dubber import DubbingPipeline
video, wav, out = sys.argv[1:4]
pipe = DubbingPipeline.from_pretrained("default", device="cpu")
t0 = time.perf_counter()
r = pipe(video, wav, out, fit="loop", overwrite=True)
print(json.dumps({"frames": r.frames, "seconds": round(time.perf_counter() - t0, 1),
                  "peak_rss_mb": peak_mb()}))
"""
)


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_speech(path: Path, minutes: float) -> Path:
    import numpy as np

    from dubber.media import decode_audio, write_wav

    speech = decode_audio(ROOT / "examples" / "speech.wav", sample_rate=16000)
    n = int(minutes * 60 * 16000)
    return write_wav(path, np.tile(speech.mono, int(np.ceil(n / speech.mono.size)))[:n], 16000)


def make_faceless_video(path: Path) -> Path:
    from fractions import Fraction

    import numpy as np

    from dubber.media import VideoWriter

    with VideoWriter(path, width=128, height=128, fps=Fraction(25), overwrite=True) as writer:
        for i in range(100):
            writer.write(np.full((128, 128, 3), 60 + i, np.uint8))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="5,60", help="comma-separated lengths of the new audio")
    ap.add_argument("--skip-whole", action="store_true", help="only the streamed features")
    args = ap.parse_args()
    lengths = [float(m) for m in args.minutes.split(",") if m.strip()]
    report: dict = {"machine": platform.processor() or platform.machine(), "features": {}, "dub": {}}
    with tempfile.TemporaryDirectory(prefix="bench-long-audio-") as tmp:
        tmp = Path(tmp)
        video = make_faceless_video(tmp / "faceless.mp4")
        for minutes in lengths:
            wav = make_speech(tmp / f"speech_{minutes:g}.wav", minutes)
            key = f"{minutes:g}min"
            row = {"streamed": run(_FEATURES, str(wav), "streamed")}
            if not args.skip_whole:
                row["whole"] = run(_FEATURES, str(wav), "whole")
            report["features"][key] = row
            report["dub"][key] = run(_DUB, str(video), str(wav), str(tmp / "out.mp4"))
            print(json.dumps({key: {"features": row, "dub": report["dub"][key]}}), flush=True)
    if len(lengths) >= 2:
        first, last = f"{lengths[0]:g}min", f"{lengths[-1]:g}min"
        report["dub_longest_over_shortest"] = round(
            report["dub"][last]["peak_rss_mb"] / report["dub"][first]["peak_rss_mb"], 4
        )
    out = ROOT / "benchmarks" / "results" / "long_audio_cpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
