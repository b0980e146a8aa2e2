"""Voice variants for a speech completer's training: Whisper's log-mel in a warped voice, the cache's variant
features, windows drawn among them, and `dub train landmarks --set voice_warp=...`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dubber.audio.augment import band_centres
from dubber.audio.speech import encode_speech, whisper_log_mel
from dubber.data import PrepCache
from dubber.data.clip_arrays import SpeechInput, load_clips
from dubber.data.prep_clip import ClipRecord
from dubber.data.speech_cache import add_voice_variants, read_speech, voice_variant_name, voice_warp
from dubber.errors import InputError
from dubber.models.speech_encoder import SpeechEncoder, SpeechEncoderConfig
from dubber.training.landmark_sampler import WindowSampler
from dubber.training.landmark_trainer import LandmarkTrainConfig
from tests.media_factory import make_audio
from tests.synthetic_cache import make_cache
from tests.tiny_bundle import make_tiny_speech_encoder

TINY = ("tiny-test.layer1", 16)
SPEC = SpeechInput("tiny-test", 10, False, 1)


def _tone(hz: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _peak_hz(log_mel: np.ndarray) -> float:
    from dubber.audio.mel import MelConfig

    centres = band_centres(MelConfig(n_fft=400, hop_length=160, win_length=400, fmin=0.0, fmax=8000.0))
    return float(centres[int(np.argmax(log_mel[:, 10:40].mean(axis=1)))])


@pytest.mark.parametrize("warp", [0.87, 1.15])
def test_a_warped_voice_moves_a_tone_by_the_factor(warp):
    x = _tone(1500.0)
    plain = whisper_log_mel(x, 50)
    np.testing.assert_array_equal(whisper_log_mel(x, 50, warp=1.0), plain)
    moved = _peak_hz(whisper_log_mel(x, 50, warp=warp))
    assert abs(_peak_hz(plain) - 1500.0) < 80.0
    assert abs(moved - 1500.0 * warp) < 100.0, moved  # mel bands near 1.5 kHz are ~70 Hz apart


def test_voice_warps_are_fixed_by_clip_and_index_and_within_the_amount():
    warps = [voice_warp(f"clip{i}", 0.15, k) for i in range(200) for k in range(4)]
    assert all(1 / 1.15 <= w <= 1.15 for w in warps)
    assert np.std(np.log(warps)) > 0.05  # spread over the range, not one value
    assert voice_warp("clip3", 0.15, 2) == voice_warp("clip3", 0.15, 2)
    assert voice_warp("clip3", 0.15, 2) != voice_warp("clip3", 0.15, 1)
    assert voice_variant_name("whisper-tiny.en.layer3", 0.15, 2) == "whisper-tiny.en.layer3.vtlp15.2"


def test_voice_variants_are_added_to_a_cache_once(tmp_path):
    torch.manual_seed(0)
    enc = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    wav = make_audio(tmp_path / "a.wav", seconds=1.5)
    (tmp_path / "clips" / "x").mkdir(parents=True)
    rec = ClipRecord("x", "train", "s", str(wav), "ok", has_audio=True)
    calls = []
    made = add_voice_variants(
        tmp_path, [rec], enc, layer=1, amount=0.15, count=3, progress=lambda d, t: calls.append((d, t))
    )
    assert made == 3 and calls == [(1, 3), (2, 3), (3, 3)]
    from dubber.media.audio import decode_audio

    mono = decode_audio(wav).mono
    plain = encode_speech(mono, enc, layer=1).steps
    for k in range(3):
        got = read_speech(tmp_path, rec, voice_variant_name("tiny-test.layer1", 0.15, k))
        want = encode_speech(mono, enc, layer=1, warp=voice_warp("x", 0.15, k)).steps
        np.testing.assert_allclose(got, want, atol=2e-3)  # stored as float16
        assert got.shape == plain.shape and np.abs(got - plain).mean() > 1e-3
    assert add_voice_variants(tmp_path, [rec], enc, layer=1, amount=0.15, count=3) == 0  # resumable
    assert add_voice_variants(tmp_path, [rec], enc, layer=1, amount=0.15, count=4) == 1  # only the new one
    (tmp_path / "clips" / "y").mkdir()
    gone = ClipRecord("y", "train", "s", str(tmp_path / "moved.wav"), "ok", has_audio=True)
    with pytest.raises(InputError, match="moved.wav.*prepared clip y"):
        add_voice_variants(tmp_path, [gone], enc, layer=1, amount=0.15, count=1)
    assert not list((tmp_path / "clips" / "y").iterdir())  # nothing half-written


def _write_variants(cache: PrepCache, count: int, amount: float = 0.15) -> None:
    """Variant k of each clip's features: the plain ones plus 100 * (k + 1), so a window says which it read."""
    for rec in cache.records("train"):
        plain = read_speech(cache.root, rec, TINY[0])
        for k in range(count):
            name = voice_variant_name(TINY[0], amount, k)
            np.save(cache.root / "clips" / rec.clip_id / f"speech-{name}.npy", plain + 100.0 * (k + 1))


def test_training_windows_draw_the_own_voice_and_every_variant(tmp_path):
    cache = PrepCache(make_cache(tmp_path / "c", {"a": "train"}, speech=TINY))
    plain_clips = load_clips(cache, "train", min_frames=5, speech=SPEC)
    with pytest.raises(InputError, match="lacks voice variant 0"):
        load_clips(cache, "train", min_frames=5, speech=SPEC, voices=(0.15, 2))
    _write_variants(cache, 2)
    clips = load_clips(cache, "train", min_frames=5, speech=SPEC, voices=(0.15, 2))
    np.testing.assert_array_equal(clips[0].audio_windows, plain_clips[0].audio_windows)  # the own voice is unchanged
    sampler, plain = WindowSampler(clips, 5, 4), WindowSampler(plain_clips, 5, 4)
    seen = set()
    for step in range(6):
        got, own = sampler.batch(16, seed=0, step=step), plain.batch(16, seed=0, step=step)
        assert torch.equal(got["target"], own["target"]) and torch.equal(got["pose"], own["pose"])
        shift = (got["audio"] - own["audio"]).numpy()
        per_item = np.round(shift.reshape(16, -1).mean(axis=1) / 100.0)
        whole = np.broadcast_to(per_item[:, None, None, None] * 100.0, shift.shape)  # whole windows swapped
        np.testing.assert_allclose(shift, whole, atol=0.5)
        seen |= set(per_item.astype(int).tolist())
    assert seen == {0, 1, 2}
    # Evaluation windows (no augmentation) always hear the clip's own voice.
    fixed = sampler.gather(sampler.starts[:8], None)["audio"]
    assert torch.equal(fixed, plain.gather(plain.starts[:8], None)["audio"])
    with pytest.raises(ValueError, match="give the speech input too"):
        load_clips(cache, "train", voices=(0.15, 2))


def test_voice_warp_needs_speech_features():
    with pytest.raises(ValueError, match="needs audio 'speech'"):
        LandmarkTrainConfig(voice_warp=0.15)
    with pytest.raises(ValueError, match="needs audio 'speech'"):
        LandmarkTrainConfig(audio="mel+speech", voice_warp=0.15)
    with pytest.raises(ValueError, match="whole percent"):
        LandmarkTrainConfig(audio="speech", voice_warp=0.155)
    LandmarkTrainConfig(audio="speech", voice_warp=0.07)  # 0.07 * 100 is 7.000000000000001
    with pytest.raises(ValueError, match="at least 1"):
        LandmarkTrainConfig(audio="speech", voice_warp=0.15, voice_variants=0)


def test_train_cli_trains_on_voice_variants(tmp_path, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(tmp_path / "weights"))
    make_tiny_speech_encoder(tmp_path / "weights")
    cache = make_cache(tmp_path / "c", {"a": "train", "b": "train", "d": "dev"}, speech=TINY)
    _write_variants(PrepCache(cache), 2, amount=0.1)  # there already, as a cache filled by an earlier run holds them
    base = [
        sys.executable,
        "-m",
        "dubber",
        "train",
        "landmarks",
        "--data",
        str(cache),
        "--set",
        "model=tiny",
        "--max-steps",
        "4",
        "--set",
        "batch_size=4",
        "--device",
        "cpu",
        "--json",
        "--set",
        "speech_encoder=tiny-test",
        "--set",
        "speech_layer=1",
    ]
    ok = subprocess.run(
        base
        + [
            "--out",
            str(tmp_path / "r"),
            "--set",
            "audio=speech",
            "--set",
            "voice_warp=0.1",
            "--set",
            "voice_variants=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["train"]["voice_warp"], saved["train"]["voice_variants"]) == (0.1, 2)
    assert json.loads(ok.stdout)["step"] == 4
    for extra, words in (
        (["--set", "voice_warp=0.1"], "needs audio 'speech'"),
        (["--set", "audio=speech", "--set", "voice_warp=0.155"], "whole percent"),
        (["--set", "audio=speech", "--set", "voice_channel=true"], "unknown setting(s) voice_channel"),
    ):
        bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), *extra], capture_output=True, text=True)
        assert bad.returncode == 2 and words in bad.stderr and not (tmp_path / "bad").exists(), bad.stderr
