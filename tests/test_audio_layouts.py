"""Surround sound in and out: a 5.1 track keeps its layout (centre-channel dialogue at its level), what the codec
cannot hold is downmixed by FFmpeg's standard (ITU-R BS.775) matrix, never by averaging channels."""

from __future__ import annotations

import numpy as np
import pytest

from dubber.cli.app import run
from dubber.media import decode_audio, probe_media
from dubber.media.audio import AudioReader
from dubber.media.audio_feed import convert_layout, output_layout
from tests.media_factory import make_audio, make_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

RATE = 48_000


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def _dialogue(seconds: float, layout_channels: int, centre: int = 2) -> np.ndarray:
    """Speech-like sound (a 220 Hz tone under a 4 Hz syllable envelope) in the centre channel alone, -21 dBFS RMS."""
    t = np.arange(int(seconds * RATE)) / RATE
    samples = np.zeros((layout_channels, len(t)), np.float32)
    samples[centre] = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return samples


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize(("layout", "channels", "kept"), [("5.1", 6, "5.1"), ("7.1", 8, "7.1")])
def test_a_surround_dub_keeps_the_dialogue_level(tmp_path, tiny_root, monkeypatch, layout, channels, kept):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    speech = make_audio(tmp_path / "speech.wav", rate=RATE, layout=layout, samples=_dialogue(1.0, channels))
    video = make_video(tmp_path / "v.mp4", frames=25)
    out = tmp_path / "out.mp4"
    assert run(["video", str(video), "-a", str(speech), "-o", str(out), "--weights", TINY_BUNDLE]) == 0
    info = probe_media(out).audio
    assert info.codec == "aac" and info.channels == channels
    with AudioReader(out, sample_rate=None, mono=False) as reader:
        assert reader.source_layout == kept
        dubbed = np.concatenate(list(reader.blocks()), axis=1)
    source = decode_audio(speech, sample_rate=None, mono=False).samples
    assert abs(_rms_db(dubbed[2]) - _rms_db(source[2])) < 1.0  # the centre channel: the dialogue
    assert all(_rms_db(dubbed[c]) < _rms_db(source[2]) - 30 for c in (0, 1, 4, 5))  # nothing leaked elsewhere


def test_the_mono_features_hear_centre_dialogue_at_its_level(tmp_path):
    speech = make_audio(tmp_path / "speech.wav", rate=RATE, layout="5.1", samples=_dialogue(0.5, 6))
    mono = decode_audio(speech, sample_rate=RATE, mono=True).samples[0]
    assert abs(_rms_db(mono) - _rms_db(_dialogue(0.5, 6)[2])) < 1.0


def test_downmixes_use_the_standard_matrix():
    """The centre reaches stereo at -3 dB in each channel (ITU-R BS.775), not at 1/6 as a channel average."""
    surround = _dialogue(0.2, 6)
    stereo = convert_layout(surround, "5.1", "stereo", RATE)
    assert stereo.shape[0] == 2
    for channel in stereo:
        assert abs(_rms_db(channel) - (_rms_db(surround[2]) - 3.01)) < 0.1
    assert output_layout("5.1", "aac") == "5.1" and output_layout("mono", "aac") == "mono"
    assert output_layout("7.1", "aac") == "7.1" and output_layout("22.2", "aac") == "7.1"  # AAC: 16 channels at most


def test_a_wav_without_a_channel_order_gets_the_default_layout(tmp_path):
    path = make_audio(tmp_path / "six.wav", rate=RATE, layout="6 channels", samples=_dialogue(0.2, 6))
    with AudioReader(path, sample_rate=None, mono=False) as reader:
        assert reader.source_layout == "5.1" and reader.channels == 6
