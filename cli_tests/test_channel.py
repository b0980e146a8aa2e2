"""Recording-channel augmentation: the tone, room and noise a voice variant is heard through, and the cache's
channel variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cli_tests.media_factory import make_audio
from dubber.audio.channel import EQ_HZ, Channel, apply_channel, random_channel, room_response
from dubber.audio.speech import encode_speech
from dubber.data.prep_clip import ClipRecord
from dubber.data.speech_cache import add_voice_variants, read_speech, voice_channel, voice_variant_name, voice_warp
from dubber.media.audio import decode_audio
from dubber.models.speech_encoder import SpeechEncoder, SpeechEncoderConfig
from dubber.training.landmark_trainer import LandmarkTrainConfig

SR = 16_000
DRY = Channel(eq_db=(0.0,) * len(EQ_HZ), rt60=0.0, wet=0.0, snr_db=None, seed=0)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


def test_a_flat_dry_quiet_channel_returns_the_input_and_every_channel_keeps_length_and_level():
    x = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    np.testing.assert_allclose(apply_channel(x, DRY), x, atol=1e-5)
    louder = Channel(eq_db=(6.0,) * len(EQ_HZ), rt60=0.0, wet=0.0, snr_db=None, seed=0)
    np.testing.assert_allclose(apply_channel(x, louder), x, atol=1e-5)  # a flat gain is only level, put back
    for seed in range(6):
        channel = random_channel(np.random.default_rng(seed))
        assert all(-6.0 <= g <= 6.0 for g in channel.eq_db) and len(channel.eq_db) == len(EQ_HZ)
        y = apply_channel(x, channel)
        assert y.shape == x.shape and y.dtype == np.float32
        assert abs(np.sqrt(np.mean(y**2)) - np.sqrt(np.mean(x**2))) < 1e-4
        np.testing.assert_array_equal(apply_channel(x, channel), y)  # a channel is fixed by its draws
    assert apply_channel(np.zeros(0, np.float32), random_channel(np.random.default_rng(1))).shape == (0,)
    assert not apply_channel(np.zeros(SR, np.float32), random_channel(np.random.default_rng(2))).any()


def test_the_tone_curve_lifts_and_cuts_the_bands_it_names():
    x = np.random.default_rng(1).normal(0, 0.1, 2 * SR)
    bright = Channel(eq_db=(-6.0, -6.0, 0.0, 0.0, 6.0, 6.0), rt60=0.0, wet=0.0, snr_db=None, seed=0)
    y = apply_channel(x, bright)
    before = _band_energy(x, 4000, 7000) / _band_energy(x, 50, 200)
    after = _band_energy(y, 4000, 7000) / _band_energy(y, 50, 200)
    assert after / before == pytest.approx(10 ** (12 / 10), rel=0.05)  # +6 dB against -6 dB: 12 dB of power


def test_the_room_rings_on_after_a_click_and_decays_by_its_rt60():
    ir = room_response(0.4, SR, np.random.default_rng(0))
    assert len(ir) == int(1.2 * 0.4 * SR) and np.sum(ir**2) == pytest.approx(1.0)
    early, late = np.mean(ir[800:1600] ** 2), np.mean(ir[int(0.3 * SR) : int(0.35 * SR)] ** 2)
    # 60 dB over 0.4 s: from ~0.075 s to ~0.325 s the energy falls by about 37.5 dB
    assert 10 * np.log10(early / late) == pytest.approx(37.5, abs=4.0)
    x = np.zeros(SR)
    x[SR // 4] = 1.0
    room = Channel(eq_db=(0.0,) * len(EQ_HZ), rt60=0.4, wet=0.5, snr_db=None, seed=3)
    y = apply_channel(x, room)
    assert np.abs(y[: SR // 4]).max() < 1e-6  # nothing before the sound (the room is causal)
    assert np.sum(y[SR // 4 + 200 : SR // 2] ** 2) > 0.1 * np.sum(y**2)  # the tail holds real energy


def test_noise_sits_at_the_drawn_signal_to_noise_ratio():
    t = np.arange(2 * SR) / SR
    x = 0.2 * np.sin(2 * np.pi * 440 * t)
    noisy = Channel(eq_db=(0.0,) * len(EQ_HZ), rt60=0.0, wet=0.0, snr_db=20.0, seed=5)
    y = apply_channel(x, noisy).astype(np.float64)
    scale = np.sqrt(1 + 10 ** (-20 / 10))  # the output is put back at the input's level
    residual = y * scale - x
    assert 10 * np.log10(np.mean(x**2) / np.mean(residual**2)) == pytest.approx(20.0, abs=0.5)


def test_channel_variants_are_files_of_their_own_and_fixed_by_clip_and_index(tmp_path):
    assert voice_variant_name("whisper-tiny.en.layer3", 0.15, 2, True) == "whisper-tiny.en.layer3.vtlp15ch.2"
    assert voice_channel("clip3", 1) == voice_channel("clip3", 1) != voice_channel("clip3", 2)
    torch.manual_seed(0)
    enc = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    wav = make_audio(tmp_path / "a.wav", seconds=1.5, channels=2, freqs=(150.0, 3000.0))  # tones a channel tilts apart
    (tmp_path / "clips" / "x").mkdir(parents=True)
    rec = ClipRecord("x", "train", "s", str(wav), "ok", has_audio=True)
    assert add_voice_variants(tmp_path, [rec], enc, layer=1, amount=0.15, count=2, channel=True) == 2
    assert add_voice_variants(tmp_path, [rec], enc, layer=1, amount=0.15, count=2) == 2  # the plain ones apart
    assert add_voice_variants(tmp_path, [rec], enc, layer=1, amount=0.15, count=2, channel=True) == 0
    mono = decode_audio(wav).mono
    changed = []
    for k in range(2):
        got = read_speech(tmp_path, rec, voice_variant_name("tiny-test.layer1", 0.15, k, True))
        heard = apply_channel(mono, voice_channel("x", k))
        want = encode_speech(heard, enc, layer=1, warp=voice_warp("x", 0.15, k)).steps
        np.testing.assert_allclose(got, want, atol=2e-3)
        plain = read_speech(tmp_path, rec, voice_variant_name("tiny-test.layer1", 0.15, k))
        changed.append(np.abs(heard - mono).mean() > 0.01 and np.abs(got - plain).max() > 1e-3)
    assert any(changed)  # (a channel may tilt two tones alike: 150 Hz and 3 kHz are all this audio holds)


def test_voice_channel_needs_voice_variants():
    with pytest.raises(ValueError, match="needs --voice-warp"):
        LandmarkTrainConfig(audio="speech", voice_channel=True)
    LandmarkTrainConfig(audio="speech", voice_warp=0.15, voice_channel=True)
