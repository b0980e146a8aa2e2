"""How music under the new speech moves the mouth a dub plans, against the speech alone (what `dub --speech STEM`
gives the completer when `--audio` is a mix).

    python scripts/music_under_speech.py [--out benchmarks/results/music_under_speech.json]

Each long clip (benchmarks/split_long_clips.csv: speakers no shipped model trained on) is planned from its own sound,
clean and mixed with a generated backing track (chords, kick and hi-hat; "sung": also a gliding voice-like line) at
voice-over-music levels of +12, +6 and 0 dB (RMS over the clip); the planned mouth opening is scored against the
mouth tracked on the clip (Pearson, at lag 0 and at the best shift within 0.16 s). Also, 3 s of the backing track
alone before the speech (+6 dB): the planned opening there, against 3 s of silence, says whether the mouth moves with
the music where nobody speaks. And a 5.1 mix: the voice in the centre channel, the backing track in the front left
and right at the voice's RMS and in the surrounds 6 dB down: the plan from the whole mix's downmix against the plan
from its centre channel (what a dub reads from a surround mix, dubber/audio/level.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from unittest import mock

import av
import numpy as np

from dubber import DubbingPipeline
from dubber.audio.level import SpeechInput
from dubber.face.landmarks import ALL_INDICES, mouth_opening
from dubber.media import decode_audio, write_wav
from dubber.pipeline.mouth_lag import best_lag

ROOT = Path(__file__).resolve().parents[1]
RATE = 16_000
LEVELS = {"+12 dB": 12.0, "+6 dB": 6.0, "0 dB": 0.0}
LEAD = 3.0  # seconds of music alone before the speech


def backing_track(n: int, sung: bool, seed: int = 0) -> np.ndarray:
    """A generated backing track: a four-chord loop of harmonic tones (2 s a chord), a kick on each beat at 120 bpm
    and a hi-hat between; ``sung``: a vowel-like tone gliding about 330 Hz, pulsing at 1.5 Hz, over it."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    y = np.zeros(n)
    bar, beat = 2 * RATE, RATE // 2
    for i, b0 in enumerate(range(0, n, bar)):
        part = slice(b0, min(n, b0 + bar))
        root = (110.0, 146.8, 130.8, 98.0)[i % 4]
        for ratio in (1.0, 1.26, 1.5, 2.0):
            for h in range(1, 6):
                y[part] += np.sin(2 * np.pi * root * ratio * h * t[part]) / h / 4
    for b0 in range(0, n, beat):
        k = np.arange(min(beat, n - b0))
        y[b0 : b0 + len(k)] += 0.8 * np.sin(2 * np.pi * 55 * k / RATE) * np.exp(-k / (0.08 * RATE))
        h0 = b0 + beat // 2
        m = max(0, min(RATE // 20, n - h0))
        y[h0 : h0 + m] += 0.3 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.01 * RATE))
    if sung:
        glide = 330 + 40 * np.sin(2 * np.pi * 0.7 * t)
        y += 0.5 * np.sin(2 * np.pi * glide * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)
    return y


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def _plan(pipe: DubbingPipeline, track, samples: np.ndarray, folder: Path) -> np.ndarray:
    wav = write_wav(folder / "mix.wav", samples / max(1.0, float(np.abs(samples).max())), RATE)
    return mouth_opening(pipe.planned_landmarks(track, wav), ALL_INDICES)


def _surround(path: Path, voice: np.ndarray, music: np.ndarray) -> Path:
    """A 5.1 WAV: ``voice`` in the centre, ``music`` front left and right and 6 dB down in the surrounds."""
    quiet = music * 0.5
    channels = np.stack([music, music, voice, np.zeros_like(voice), quiet, quiet])  # FL FR FC LFE BL BR
    pcm = (np.clip(channels / max(1.0, float(np.abs(channels).max())), -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout="5.1")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T).reshape(1, -1), format="s16", layout="5.1")
        frame.sample_rate = RATE
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _opening(pipe: DubbingPipeline, track, audio: Path) -> np.ndarray:
    return mouth_opening(pipe.planned_landmarks(track, audio), ALL_INDICES)


def _scores(planned: np.ndarray, tracked: np.ndarray, fps: float) -> dict:
    n = min(len(planned), len(tracked))
    planned, tracked = planned[:n], tracked[:n]
    seen = ~np.isnan(tracked)
    found = best_lag(planned, tracked, fps)
    return {
        "correlation": round(float(np.corrcoef(planned[seen], tracked[seen])[0, 1]), 4),
        "at_best_shift": None if found is None else round(float(found[1]), 4),
        "planned_std": round(float(np.std(planned)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pipe = DubbingPipeline.from_pretrained()
    rows = list(csv.DictReader((ROOT / "benchmarks" / "split_long_clips.csv").open()))
    clips: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for row in rows:
            path = ROOT / "benchmarks" / row["path"]
            track = pipe.analyse(path)
            fps, tracked = track.frame_rate(25.0), track.opening
            speech = decode_audio(path).mono.astype(np.float64)
            clip = {"clean": _scores(_plan(pipe, track, speech, folder), tracked, fps)}
            for kind in ("instrumental", "sung"):
                music = backing_track(len(speech), kind == "sung")
                music *= _rms(speech) / _rms(music)
                for name, db in LEVELS.items():
                    mixed = speech + music * 10 ** (-db / 20)
                    clip[f"{kind} {name}"] = _scores(_plan(pipe, track, mixed, folder), tracked, fps)
            lead, tail = round(LEAD * RATE), round(LEAD * fps)
            quiet = np.concatenate([np.zeros(lead), speech])
            music = backing_track(len(quiet), sung=True)
            music *= _rms(speech) / _rms(music) * 10 ** (-6 / 20)
            for name, samples in (("silence first", quiet), ("music first", quiet + music)):
                opening = _plan(pipe, track, samples, folder)[3 : tail - 3]  # the edges hear the speech's start
                clip[name] = {"mean": round(float(opening.mean()), 4), "std": round(float(opening.std()), 4)}
            music = backing_track(len(speech), sung=False)
            music *= _rms(speech) / _rms(music)
            mix = _surround(folder / "mix51.wav", speech, music)
            clip["5.1, its centre"] = _scores(_opening(pipe, track, mix), tracked, fps)
            with mock.patch("dubber.pipeline.dubbing.speech_input", return_value=SpeechInput(False, 1.0)):
                clip["5.1, downmix"] = _scores(_opening(pipe, track, mix), tracked, fps)
            clips[row["speaker"]] = clip
            print(row["speaker"], json.dumps(clip), flush=True)
    names = [
        "clean",
        *(f"{k} {n}" for k in ("instrumental", "sung") for n in LEVELS),
        "5.1, downmix",
        "5.1, its centre",
    ]
    means = {
        name: {
            key: round(float(np.mean([c[name][key] for c in clips.values() if c[name][key] is not None])), 4)
            for key in ("correlation", "at_best_shift", "planned_std")
        }
        for name in names
    }
    for name in ("silence first", "music first"):
        means[name] = {key: round(float(np.mean([c[name][key] for c in clips.values()])), 4) for key in ("mean", "std")}
    for name, value in means.items():
        print(f"{name:>22}: {value}")
    result = {
        "command": "python scripts/music_under_speech.py --out benchmarks/results/music_under_speech.json",
        "clips": clips,
        "means": means,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
