"""How the speech's level moves the mouth a dub plans, with and without quiet speech raised to the models' level
(`dubber/audio/level.py`), and the train speakers' levels the rule is set from.

    python scripts/quiet_speech.py [--out benchmarks/results/quiet_speech.json]

Each long clip (benchmarks/split_long_clips.csv) is planned from its own sound as it is, 20 dB down and 35 dB down;
the planned opening is scored against the mouth tracked on the clip (Pearson). The train speakers' level: the
median over up to 4 clips of each train speaker of ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from unittest import mock

import numpy as np
from music_under_speech import ROOT, _plan, _scores

from dubber import DubbingPipeline
from dubber.audio.level import SpeechInput, speech_level
from dubber.media import decode_audio

SHARED = ROOT.parent / "shared" / "data"
DOWN = {"as recorded": 0.0, "20 dB down": -20.0, "35 dB down": -35.0}


def train_levels() -> list[float]:
    by_speaker: dict[str, list[Path]] = defaultdict(list)
    for row in csv.DictReader((SHARED / "manifest.csv").open()):
        if row["split"] == "train":
            by_speaker[row["speaker"]].append(SHARED / row["path"])
    return [float(np.median([speech_level(p).level for p in paths[:4]])) for paths in by_speaker.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    levels = train_levels()
    print(f"train speakers' levels: min {min(levels):.1f} median {np.median(levels):.1f} max {max(levels):.1f} dB")
    pipe = DubbingPipeline.from_pretrained()
    clips: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in csv.DictReader((ROOT / "benchmarks" / "split_long_clips.csv").open()):
            path = ROOT / "benchmarks" / row["path"]
            track = pipe.analyse(path)
            fps, tracked = track.frame_rate(25.0), track.opening
            speech = decode_audio(path).mono.astype(np.float64)
            clip: dict = {"level": round(speech_level(path).level, 1)}
            for name, db in DOWN.items():
                samples = speech * 10 ** (db / 20)
                clip[name] = {"raised": _scores(_plan(pipe, track, samples, Path(tmp)), tracked, fps)["correlation"]}
                with mock.patch("dubber.pipeline.dubbing.speech_input", return_value=SpeechInput(False, 1.0)):
                    plain = _plan(pipe, track, samples, Path(tmp))
                clip[name]["as it is"] = _scores(plain, tracked, fps)["correlation"]
            clips[row["speaker"]] = clip
            print(row["speaker"], json.dumps(clip), flush=True)
    means = {
        name: {k: round(float(np.mean([c[name][k] for c in clips.values()])), 4) for k in ("raised", "as it is")}
        for name in DOWN
    }
    print(json.dumps(means, indent=1))
    result = {
        "command": "python scripts/quiet_speech.py --out benchmarks/results/quiet_speech.json",
        "train_speaker_levels": {
            "speakers": len(levels),
            "min": round(min(levels), 1),
            "median": round(float(np.median(levels)), 1),
            "max": round(max(levels), 1),
        },
        "clips": clips,
        "means": means,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
