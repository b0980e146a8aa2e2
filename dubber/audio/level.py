"""How a dub's features read an audio file: a surround mix through its centre channel, very quiet speech raised.

A surround mix (a layout with a centre channel beside others) keeps its dialogue in the centre and its music and
effects mostly around it: the features read the centre alone, unless it holds no speech (docs/DUBBING.md "Music and
effects under the speech").

The speech level is the 95th percentile of the RMS of the 20 ms frames, in dB of full scale. The completers were
trained on speakers whose level lies between -30.1 and -6.3 dB (the median over each of the 86 train speakers'
clips of ../shared/data: median -13.6 dB). Speech far quieter reaches them as other features: on the long clips,
the planned opening's correlation with the mouth fell from 0.517 to 0.491 with each clip's speech 20 dB down and
to 0.443 35 dB down (one clip 0.48 -> 0.08); raised, 0.510 and 0.500 (docs/DUBBING.md "Quiet speech").

Speech quieter than every train speaker is raised to their median before the features are computed; speech within
their range is left as it is (its features and dubs do not change), and so is a track whose loud frames stand less
than 15 dB above its quiet ones (the 10th percentile): steady noise or hum, not speech with its pauses (speech:
20-40 dB; a LivePortrait clip's near-silent track, level -59.8 dB: 5 dB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubber.log import get_logger
from dubber.media.audio import FEATURE_SAMPLE_RATE, AudioReader

log = get_logger("audio")

FRAME = FEATURE_SAMPLE_RATE // 50  # 20 ms
QUIET = -32.0  # dB: speech quieter than this is raised (the quietest train speaker: -30.1)
TARGET = -14.0  # dB: ... to this (the train speakers' median)
SPEECH_SPREAD = 15.0  # dB between the loud frames and the quiet ones (10th percentile) that speech has at least
FLOOR = -80.0  # dB: nothing quieter is raised (16-bit audio's own noise is 16 dB below)


@dataclass(frozen=True)
class SpeechLevel:
    level: float  # dB of full scale: the 95th percentile of the 20 ms frames' RMS (-inf: no complete frame)
    spread: float  # dB from the 10th percentile to the 95th: speech has pauses, steady noise does not
    centre: bool = False  # read on a surround mix's centre channel alone

    @property
    def speech_like(self) -> bool:
        return self.level > FLOOR and self.spread >= SPEECH_SPREAD


@dataclass(frozen=True)
class SpeechInput:
    """How a dub's features read an audio file: its surround mix's centre channel alone or the whole downmix, and
    the gain on the samples."""

    centre: bool
    gain: float


def speech_level(path: str | Path, max_seconds: float | None = None, *, dialogue: bool = False) -> SpeechLevel:
    """The speech level of ``path`` (its first ``max_seconds`` when given), from its 20 ms frames at 16 kHz mono;
    ``dialogue``: of a surround mix's centre channel alone (``AudioReader``'s ``dialogue``)."""
    most = None if max_seconds is None else max(1, round(max_seconds * FEATURE_SAMPLE_RATE))
    rms: list[np.ndarray] = []
    carry = np.zeros(0, np.float32)
    seen = 0
    with AudioReader(path, sample_rate=FEATURE_SAMPLE_RATE, mono=True, dialogue=dialogue) as reader:
        centre = reader.centre_only
        for block in reader.blocks():
            samples = block[0] if most is None else block[0, : most - seen]
            seen += len(samples)
            samples = np.concatenate([carry, samples])
            whole = len(samples) // FRAME * FRAME
            frames = samples[:whole].reshape(-1, FRAME).astype(np.float64)
            rms.append(np.sqrt((frames**2).mean(1)))
            carry = samples[whole:]
            if most is not None and seen >= most:
                break
    values = np.concatenate(rms) if rms else np.zeros(0)
    if not len(values):
        return SpeechLevel(float("-inf"), 0.0, centre)
    quiet, loud = 20 * np.log10(np.maximum(np.percentile(values, [10, 95]), 1e-12))
    return SpeechLevel(float(loud), float(loud - quiet), centre)


def level_gain(level: SpeechLevel) -> float:
    """The factor the samples are multiplied by before the features: what brings speech quieter than ``QUIET``
    (above ``FLOOR``, and with speech's spread) to ``TARGET``, else 1."""
    if not level.speech_like or level.level >= QUIET:
        return 1.0
    return float(10 ** ((TARGET - level.level) / 20))


def speech_input(path: str | Path, max_seconds: float | None = None) -> SpeechInput:
    """How the features read ``path`` (its first ``max_seconds``): a surround mix's centre channel where it holds
    speech (else the downmix), raised when quiet (``level_gain``); each said in the log."""
    level = speech_level(path, max_seconds, dialogue=True)
    if level.centre and not level.speech_like:
        log.info("%s: its centre channel holds no speech; the mouth follows the whole mix", path)
        level = speech_level(path, max_seconds)
    elif level.centre:
        log.info("%s: a surround mix; the mouth follows its centre channel, the dialogue's", path)
    gain = level_gain(level)
    if gain != 1.0:
        said = 20 * np.log10(gain)
        log.info("%s: quiet speech (level %.1f dB): raised %.1f dB for the models", path, level.level, said)
    return SpeechInput(level.centre, gain)
