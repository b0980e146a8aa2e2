"""Quiet speech raised to the level the models were trained at (dubber/audio/level.py): the level read from the
loud frames, steady noise and speech within the training range left alone, raised speech heard as the loud one."""

from __future__ import annotations

import numpy as np
import pytest

from dubber.audio.level import QUIET, TARGET, SpeechLevel, level_gain, speech_input, speech_level
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
    read = speech_input(quiet)
    gain = read.gain
    assert not read.centre  # a mono file
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


def _five_one(tmp_path, name: str, centre: np.ndarray, around: np.ndarray):
    from tests.media_factory import make_audio

    silent = np.zeros_like(centre)
    samples = np.stack([around, around, centre, silent, around * 0.5, around * 0.5]).astype(np.float32)
    return make_audio(tmp_path / name, samples=samples, layout="5.1")


def test_a_surround_mix_is_heard_through_its_centre_channel_where_the_dialogue_is(tmp_path):
    """A 5.1 mix: the features read its centre channel alone (the speech there, the music around it), unless the
    centre holds no speech (then the whole downmix); stereo and mono are downmixed as before."""
    from dubber.media.audio import AudioReader
    from tests.media_factory import make_audio

    voice, music = _syllables(1.0, 0.3), 0.3 * np.sin(np.arange(16000) * 2 * np.pi * 1000 / 16000)
    mix = _five_one(tmp_path, "mix.wav", voice, music)
    with AudioReader(mix, dialogue=True) as reader:
        assert reader.centre_only and reader.channels == 1
        centre = np.concatenate(list(reader.blocks()), 1)[0]
    np.testing.assert_allclose(centre, voice.astype(np.float32), atol=1e-4)
    assert speech_input(mix).centre
    heard = stream_features(mix, "mel", dialogue=True, folder=tmp_path)
    alone = stream_features(make_audio(tmp_path / "voice.wav", samples=voice[None].astype(np.float32)), "mel")
    times = np.arange(0, 1.0, 0.04)
    np.testing.assert_allclose(heard.features.windows(times), alone.features.windows(times), atol=1e-3)
    heard.close(), alone.close()
    speech_around = _five_one(tmp_path, "around.wav", np.zeros(16000), voice)  # the centre silent
    assert not speech_input(speech_around).centre
    stereo = make_audio(tmp_path / "stereo.wav", channels=2, seconds=0.5)
    with AudioReader(stereo, dialogue=True) as reader:
        assert not reader.centre_only and reader.channels == 1
    assert not speech_input(stereo).centre


def test_a_stem_past_its_mix_or_far_short_of_it_is_warned_of(tmp_path, caplog):
    """``new_speech_features``: the stem read on the mix's length; a warning where it runs past the mix or ends
    over ``STEM_SLACK`` before it, an info line where it ends a little early, nothing where it fits."""
    import logging

    from dubber.pipeline.new_speech import STEM_SLACK, new_speech_features

    mix = write_wav(tmp_path / "mix.wav", _syllables(2.0, 0.1), 16000)
    cases = {"long.wav": (3.0, logging.WARNING), "short.wav": (2.0 - STEM_SLACK - 0.5, logging.WARNING)}
    cases |= {"near.wav": (1.8, logging.INFO), "fits.wav": (2.0, None)}
    for name, (seconds, level) in cases.items():
        stem = write_wav(tmp_path / name, _syllables(seconds, 0.1), 16000)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dubber"):
            streamed = new_speech_features(
                lambda path, **kw: stream_features(path, "mel", folder=tmp_path, **kw), mix, stem
            )
        assert streamed.seconds == 2.0, name
        told = [r for r in caplog.records if name in r.getMessage()]
        assert [r.levelno for r in told] == ([] if level is None else [level]), name
        streamed.close()
