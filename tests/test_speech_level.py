"""Quiet speech raised to the level the models were trained at (dubber/audio/level.py): the level read from the
loud frames, steady noise and speech within the training range left alone, raised speech heard as the loud one."""

from __future__ import annotations

import numpy as np
import pytest

from dubber.audio.level import QUIET, TARGET, SpeechLevel, level_gain, quiet_speech_gain, speech_level
from dubber.audio.streaming import stream_features
from dubber.media import write_wav


def _syllables(seconds: float, amplitude: float) -> np.ndarray:
    """A 200 Hz tone switched on and off four times a second: speech's loud frames and its pauses."""
    t = np.arange(round(seconds * 16000)) / 16000
    return amplitude * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 4 * t) > 0)


def test_the_level_is_that_of_the_loud_frames_and_the_spread_tells_speech_from_steady_noise(tmp_path):
    speech = speech_level(write_wav(tmp_path / "s.wav", _syllables(2.0, 0.1), 16000))
    assert speech.level == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.2)  # a sine's RMS
    assert speech.spread > 40
    hum = speech_level(write_wav(tmp_path / "hum.wav", 0.001 * np.sin(np.arange(32000) / 3), 16000))
    assert hum.spread < 1
    assert speech_level(write_wav(tmp_path / "s.wav", _syllables(2.0, 0.1), 16000), max_seconds=0.01).level < -200


def test_only_speech_below_the_training_range_is_raised():
    assert level_gain(SpeechLevel(-20.0, 30.0)) == 1.0  # within the train speakers' range
    assert level_gain(SpeechLevel(QUIET - 10, 30.0)) == pytest.approx(10 ** ((TARGET - QUIET + 10) / 20))
    assert level_gain(SpeechLevel(-60.0, 5.0)) == 1.0  # steady: hum or hiss, no pauses
    assert level_gain(SpeechLevel(-90.0, 30.0)) == 1.0  # below 16-bit audio's own noise
    assert level_gain(SpeechLevel(float("-inf"), 0.0)) == 1.0


def test_raised_speech_gives_the_features_of_the_same_speech_at_the_target_level(tmp_path):
    quiet = write_wav(tmp_path / "quiet.wav", _syllables(1.5, 10 ** ((QUIET - 12) / 20)), 16000)
    gain = quiet_speech_gain(quiet)
    level = speech_level(quiet).level
    assert 20 * np.log10(gain) == pytest.approx(TARGET - level)
    loud = write_wav(tmp_path / "loud.wav", _syllables(1.5, 10 ** ((QUIET - 12) / 20)) * gain, 16000)
    raised = stream_features(quiet, "mel", gain=gain, folder=tmp_path)
    heard = stream_features(loud, "mel", folder=tmp_path)
    times = np.arange(0, 1.5, 0.04)
    unraised = stream_features(quiet, "mel", folder=tmp_path)
    want = heard.features.windows(times)
    off_raised = np.abs(raised.features.windows(times) - want).mean()
    off_unraised = np.abs(unraised.features.windows(times) - want).mean()
    # the quiet file's 16-bit quantisation, raised with it, is all that differs
    assert off_raised < 0.1 and off_unraised > 5 * off_raised, (off_raised, off_unraised)
    for streamed in (raised, heard, unraised):
        streamed.close()
