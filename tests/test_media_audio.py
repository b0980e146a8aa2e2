"""Audio decoding to 16 kHz mono float32 from many formats, rates and layouts; its errors."""

from __future__ import annotations

import numpy as np
import pytest
from media_factory import make_audio, make_video

from dubber.errors import EmptyMediaError, MediaOpenError, NoAudioStreamError
from dubber.media import decode_audio, write_wav

RATES = [8000, 16000, 22050, 44100, 48000]


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


@pytest.mark.parametrize("ext", ["wav", "mp3", "flac", "m4a"])
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
def test_decode_to_16k_mono(tmp_path, ext, rate, channels):
    seconds = 1.5
    path = make_audio(tmp_path / f"a.{ext}", rate=rate, channels=channels, seconds=seconds, freqs=(440.0, 440.0))
    clip = decode_audio(path)
    assert clip.sample_rate == 16000 and clip.channels == 1
    assert clip.samples.dtype == np.float32
    # Length within one 25 fps video frame (lossy codecs pad a little); lossless ones exactly.
    tolerance = 1 if ext in ("wav", "flac") else 0.04 * 16000
    assert abs(clip.num_samples - seconds * 16000) <= tolerance
    assert abs(_peak_hz(clip.mono, 16000) - 440.0) < 3.0
    assert 0.2 < np.abs(clip.mono).max() <= 1.0


def test_stereo_downmix_keeps_both_channels(tmp_path):
    path = make_audio(tmp_path / "s.wav", rate=44100, channels=2, seconds=1.0, freqs=(300.0, 1200.0))
    mono = decode_audio(path).mono
    spec = np.abs(np.fft.rfft(mono))
    freqs = np.fft.rfftfreq(len(mono), 1 / 16000)
    for f in (300.0, 1200.0):
        assert spec[np.argmin(np.abs(freqs - f))] > 0.25 * spec.max()


def test_native_rate_and_channels(tmp_path):
    path = make_audio(tmp_path / "s.flac", rate=44100, channels=2, seconds=0.5)
    clip = decode_audio(path, sample_rate=None, mono=False)
    assert clip.sample_rate == 44100 and clip.channels == 2 and clip.num_samples == 22050


def test_resampling_is_band_limited(tmp_path):
    # A 7 kHz tone at 48 kHz must not alias into the 16 kHz result (Nyquist 8 kHz): energy stays at 7 kHz.
    path = make_audio(tmp_path / "hi.wav", rate=48000, channels=1, seconds=1.0, freqs=(7000.0,))
    assert abs(_peak_hz(decode_audio(path).mono, 16000) - 7000.0) < 5.0


def test_audio_track_of_a_video(tmp_path):
    path = make_video(tmp_path / "v.mp4", frames=50, audio_rate=44100, audio_channels=2)
    clip = decode_audio(path)
    assert abs(clip.duration - 2.0) < 0.04


def test_video_without_audio(tmp_path):
    path = make_video(tmp_path / "v.mp4", frames=5)
    with pytest.raises(NoAudioStreamError, match=r"v\.mp4: no audio stream"):
        decode_audio(path)


def test_zero_length_audio(tmp_path):
    path = make_audio(tmp_path / "z.wav", seconds=0.0)
    with pytest.raises((EmptyMediaError, MediaOpenError), match=r"z\.wav: "):
        decode_audio(path)


@pytest.mark.parametrize("content", [b"", b"not audio at all\n" * 20, b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_undecodable_audio(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(MediaOpenError, match=r"bad\.wav: "):
        decode_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaOpenError, match="no such file"):
        decode_audio(tmp_path / "nope.mp3")


def test_write_wav_round_trips_and_clips(tmp_path):
    t = np.arange(16000) / 16000
    samples = 0.5 * np.sin(2 * np.pi * 440 * t)
    samples[:10] = 3.0  # out of range: clipped, not wrapped
    clip = decode_audio(write_wav(tmp_path / "s.wav", samples, 16000), sample_rate=None)
    assert clip.sample_rate == 16000 and clip.mono.shape == (16000,)
    assert np.allclose(clip.mono[:10], 1.0, atol=1e-3)
    assert np.abs(clip.mono[10:] - samples[10:]).max() < 1e-3


def test_the_sound_read_is_the_one_a_player_plays(tmp_path):
    """Of two audio tracks, the one marked as the default (here the second) is the one decoded, probed, copied and
    whose language is read."""
    import av

    from dubber.media import probe_media
    from dubber.media.audio import AudioReader
    from dubber.media.audio_feed import AudioFromFile, CopiedStreamFeed
    from dubber.media.stream_tags import read_extras

    low, high = make_audio(tmp_path / "low.wav", freqs=(300.0,)), make_audio(tmp_path / "high.wav", freqs=(1200.0,))
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w", format="matroska") as out, av.open(str(low)) as a, av.open(str(high)) as b:
        streams = []
        for f, language, flags in ((a, "eng", 0), (b, "spa", av.stream.Disposition.default)):
            stream = out.add_stream_from_template(f.streams.audio[0])  # every stream before the first packet
            stream.metadata["language"], stream.disposition = language, flags
            streams.append((f, stream))
        for f, stream in streams:
            for packet in f.demux(f.streams.audio[0]):
                if packet.size:
                    packet.stream = stream
                    out.mux(packet)
    clip = decode_audio(path)
    assert abs(_peak_hz(clip.mono, clip.sample_rate) - 1200.0) < 20
    assert probe_media(path).audio.index == 1 and read_extras(path).audio_language == "spa"
    feed = CopiedStreamFeed(AudioFromFile(path))
    assert feed.in_stream.index == 1
    feed.close()
    with AudioReader(path, stream=0) as reader:  # the other one, by its index
        first = np.concatenate(list(reader.blocks()), axis=1)[0]
    assert abs(_peak_hz(first, reader.sample_rate) - 300.0) < 20
