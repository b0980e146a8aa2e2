"""The log-mel of docs/ARCHITECTURE.md §4 against an independent computation, and per-frame windows at every frame
rate."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from dubber.audio import MelConfig, audio_features, frame_windows, log_mel, mel_filterbank, window_starts
from dubber.media import VideoReader
from tests.media_factory import make_audio, make_video


def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """docs/ARCHITECTURE.md §4 written out the slow way: explicit DFT sums, a loop-built Slaney filterbank, scalar dB
    maths."""
    sr, n_fft, hop, n_mels = 16000, 800, 200, 80
    y = np.empty_like(x)
    y[0] = x[0]
    for i in range(1, len(x)):
        y[i] = x[i] - 0.97 * x[i - 1]
    padded = np.concatenate([np.zeros(n_fft // 2), y, np.zeros(n_fft // 2)])
    n = np.arange(n_fft)
    hann = np.array([math.sin(math.pi * k / n_fft) ** 2 for k in range(n_fft)])  # periodic Hann
    k = np.arange(n_fft // 2 + 1)[:, None]
    cos_t, sin_t = np.cos(2 * np.pi * k * n / n_fft), np.sin(2 * np.pi * k * n / n_fft)
    steps = 1 + len(x) // hop
    spec = np.empty((steps, n_fft // 2 + 1))
    for s in range(steps):
        seg = padded[s * hop : s * hop + n_fft] * hann
        spec[s] = np.hypot(cos_t @ seg, sin_t @ seg)

    def to_mel(f: float) -> float:
        return f / (200 / 3) if f < 1000 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)

    def to_hz(m: float) -> float:
        return m * 200 / 3 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)

    lo, hi = to_mel(55.0), to_mel(7600.0)
    edges = [to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for b in range(n_fft // 2 + 1):
            f = b * sr / n_fft
            if left < f < right:
                tri = (f - left) / (centre - left) if f <= centre else (right - f) / (right - centre)
                bank[m, b] = tri * 2.0 / (right - left)
    mel = spec @ bank.T
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0)


def test_log_mel_matches_independent_computation():
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(len(t))
    ours = log_mel(x.astype(np.float32))
    ref = _reference_log_mel(x.astype(np.float32).astype(np.float64))
    assert ours.shape == ref.shape == (41, 80)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_tone_peaks_in_the_band_that_holds_it():
    sr = 16000
    t = np.arange(sr) / sr
    for freq in (250.0, 1000.0, 3000.0):
        mel = log_mel(0.5 * np.sin(2 * np.pi * freq * t))
        band = int(mel[5:-5].mean(0).argmax())
        peaks = mel_filterbank(MelConfig()).argmax(1) * sr / 800  # each filter's centre bin, in Hz
        assert abs(peaks[band] - freq) <= 0.08 * freq + 40, (freq, peaks[band])


def test_silence_is_the_floor_and_range_is_bounded():
    assert np.all(log_mel(np.zeros(16000)) == -4.0)
    loud = log_mel(np.random.default_rng(1).uniform(-1, 1, 16000))
    assert loud.min() >= -4.0 and loud.max() <= 4.0 and loud.max() > 0.0
    assert log_mel(np.zeros(0)).shape == (0, 80)


def test_80_steps_per_second_centred_on_their_time():
    cfg = MelConfig()
    assert cfg.steps_per_second == 80
    x = np.zeros(16000 * 2)
    x[16000] = 1.0  # a click at t = 1.0 s
    mel = log_mel(x)
    assert len(mel) == 161
    assert int(mel.mean(1).argmax()) == 80


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50)])
def test_windows_follow_timestamps_at_any_fps(fps):
    seconds = 3
    x = np.zeros(16000 * seconds)
    clicks = [0.5, 1.234, 2.5]
    for c in clicks:
        x[int(c * 16000)] = 1.0
    mel = log_mel(x)
    times = np.arange(int(seconds * fps)) / float(fps)
    win = frame_windows(mel, times)
    assert win.shape == (len(times), 16, 80)
    for c in clicks:
        frame = int(np.argmin(np.abs(times - c)))
        energy = win[frame].mean(1)
        peak = int(energy.argmax())
        # The click is within half a frame of this frame's time: it lands within 6.25 steps of the window centre.
        offset = (c - times[frame]) * 80
        assert abs(peak - (8 + offset)) <= 1.0, (fps, c, peak, offset)
    # Window starts advance by fps-dependent steps, never a fixed 80/25 ratio.
    starts = window_starts(times)
    np.testing.assert_array_equal(starts, np.floor(times * 80 + 0.5).astype(int) - 8)


def test_variable_frame_rate_times_and_padding():
    mel = np.linspace(-3, 3, 100, dtype=np.float32)[:, None].repeat(80, 1)
    times = np.array([0.0, 0.031, 0.1, 0.4, 1.24, 2.0])  # irregular; the last two run past the audio (1.24 s)
    win = frame_windows(mel, times)
    assert np.all(win[0, :8] == -4.0)  # before the start: silence
    np.testing.assert_array_equal(win[0, 8:], mel[:8])
    np.testing.assert_array_equal(win[2, :, 0], mel[0:16, 0])  # t=0.1 -> centre step 8
    np.testing.assert_array_equal(win[3, :, 0], mel[24:40, 0])
    assert np.all(win[5] == -4.0)  # past the end: silence
    assert frame_windows(mel, np.zeros(0)).shape == (0, 16, 80)


@pytest.mark.parametrize("fmt,rate", [("wav", 16000), ("mp3", 44100), ("flac", 48000)])
def test_features_from_files(tmp_path, fmt, rate):
    path = make_audio(tmp_path / f"a.{fmt}", rate=rate, channels=2, seconds=1.5, freqs=(1000.0,))
    feats = audio_features(path)
    assert abs(len(feats.mel) - 121) <= 3  # 1 + 24000 // 200, give or take codec padding
    assert abs(feats.duration - 1.5) < 0.05
    band = int(feats.mel[10:-10].mean(0).argmax())
    assert abs(band - int(log_mel(0.4 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).mean(0).argmax())) <= 1


def test_video_frames_align_with_its_own_audio(tmp_path):
    path = make_video(tmp_path / "v.mp4", fps=Fraction(30000, 1001), frames=45, audio_rate=16000)
    feats = audio_features(path)
    times = np.array([f.time for f in VideoReader(path)])
    win = feats.windows(times)
    assert win.shape == (45, 16, 80)
    assert np.all(win[10:35].max(axis=2) > 0.0)  # the tone is present in every window of the video's middle
    assert np.all(win[-1, -4:] == -4.0)  # the last window reaches past the audio: silence


def test_frequency_warp_moves_a_tone_to_the_scaled_frequency():
    from dubber.audio.augment import band_centres, warp_frequencies

    rate = 16_000
    t = np.arange(rate) / rate
    tone = log_mel(0.5 * np.sin(2 * np.pi * 1500.0 * t))
    higher = log_mel(0.5 * np.sin(2 * np.pi * 1500.0 * 1.15 * t))
    warped = warp_frequencies(tone[None], np.array([1.15]))[0]
    # The tone's peak band moves to where a tone at 1.15 x its frequency peaks, within one band.
    assert abs(int(np.argmax(warped[40])) - int(np.argmax(higher[40]))) <= 1
    assert int(np.argmax(warped[40])) > int(np.argmax(tone[40])) + 2
    np.testing.assert_allclose(warp_frequencies(tone[None], np.ones(1))[0], tone, atol=1e-5)
    assert np.all(np.diff(band_centres()) > 0) and 55 < band_centres()[0] < band_centres()[-1] < 7600
    batch = np.stack([tone[:20], tone[:20]])
    both = warp_frequencies(batch, np.array([0.9, 1.1]))
    assert not np.allclose(both[0], both[1])
    with pytest.raises(ValueError, match="warp factors"):
        warp_frequencies(batch, np.ones(3))
