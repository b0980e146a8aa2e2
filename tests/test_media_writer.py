"""The H.264 writer: exact encoder settings, fidelity, fps and time base, odd sizes, audio muxing, atomicity."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest
from media_factory import face_frame, make_audio, make_video, pattern_frame, psnr

from dubber.errors import OutputError
from dubber.media import AudioClip, AudioFromFile, VideoEncodeOptions, VideoReader, VideoWriter, probe_media
from dubber.media.encode_options import (
    X264_PRESETS,
    AudioEncodeOptions,
    audio_options_for,
    can_copy_audio,
    container_format_for,
    encode_rate,
    even_size,
    muxer_options,
    video_encoder,
    vp9_options,
    x264_options,
)


# -- pure builders, checked as exact values -------------------------------------------------------------------------
def test_x264_options_exact():
    assert x264_options(VideoEncodeOptions()) == {"crf": "18", "preset": "medium"}
    assert x264_options(VideoEncodeOptions(crf=23, preset="veryfast", tune="film")) == {
        "crf": "23",
        "preset": "veryfast",
        "tune": "film",
    }
    avx512 = frozenset({"sse2", "avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
    assert x264_options(VideoEncodeOptions(), avx512) == {"crf": "18", "preset": "medium", "x264-params": "asm=AVX2"}
    assert x264_options(VideoEncodeOptions(), frozenset({"sse2", "avx2"})) == {"crf": "18", "preset": "medium"}
    assert x264_options(VideoEncodeOptions(), frozenset({"avx512f", "avx512bw"})) == {"crf": "18", "preset": "medium"}
    with pytest.raises(ValueError, match="preset='warp'"):
        x264_options(VideoEncodeOptions(preset="warp"))
    with pytest.raises(ValueError, match="crf=60"):
        x264_options(VideoEncodeOptions(crf=60))


def test_container_formats_exact():
    formats = [container_format_for(f"x{e}") for e in (".mp4", ".MOV", ".mkv", ".m4v", ".webm")]
    assert formats == ["mp4", "mov", "matroska", "mp4", "webm"]
    with pytest.raises(OutputError, match=r"out\.avi: unsupported output type '\.avi'"):
        container_format_for("out.avi")
    assert can_copy_audio("mp4", "aac") and not can_copy_audio("mp4", "pcm_s16le")
    assert can_copy_audio("matroska", "pcm_s16le")
    assert can_copy_audio("webm", "opus") and can_copy_audio("webm", "vorbis") and not can_copy_audio("webm", "aac")


def test_webm_encoder_options_exact():
    assert vp9_options(VideoEncodeOptions()) == {
        "crf": "18",
        "b": "0",
        "deadline": "realtime",
        "cpu-used": "4",
        "row-mt": "1",
    }
    assert vp9_options(VideoEncodeOptions(crf=30, preset="veryslow"))["deadline"] == "good"
    assert vp9_options(VideoEncodeOptions(crf=0))["lossless"] == "1" and "lossless" not in vp9_options(
        VideoEncodeOptions()
    )
    assert [vp9_options(VideoEncodeOptions(preset=p))["cpu-used"] for p in X264_PRESETS] == [
        "8", "7", "6", "5", "5", "4", "5", "4", "3"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="preset='warp'"):
        vp9_options(VideoEncodeOptions(preset="warp"))
    assert video_encoder("webm", VideoEncodeOptions()) == ("libvpx-vp9", vp9_options(VideoEncodeOptions()))
    assert video_encoder("mov", VideoEncodeOptions()) == ("libx264", {"crf": "18", "preset": "medium"})
    assert muxer_options("webm") == muxer_options("matroska") == {"fflags": "+bitexact"}
    assert muxer_options("mp4") == muxer_options("mov") == {}
    assert audio_options_for("webm", AudioEncodeOptions()) == AudioEncodeOptions(codec="libopus")
    assert audio_options_for("mp4", AudioEncodeOptions()) == AudioEncodeOptions()
    assert [encode_rate("libopus", r) for r in (8000, 16000, 22050, 44100, 48000, 96000)] == [
        8000, 16000, 24000, 48000, 48000, 48000
    ]  # fmt: skip
    assert encode_rate("aac", 44100) == 44100


def test_even_size():
    assert even_size(64, 48) == (64, 48)
    assert even_size(65, 49) == (66, 50)


# -- writing -------------------------------------------------------------------------------------------------------
def _write(path, frames, width, height, fps=Fraction(25), **kw):
    with VideoWriter(path, width=width, height=height, fps=fps, **kw) as w:
        for i in range(frames):
            w.write(pattern_frame(i, width, height))
    return path


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov", "webm"])
@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001), Fraction(50)], ids=str)
def test_round_trip_fidelity_fps_and_count(tmp_path, ext, fps):
    out = _write(tmp_path / f"o.{ext}", 30, 128, 96, fps=fps)
    info = probe_media(out).video
    assert info.fps == fps and info.frame_count == 30
    assert abs(info.duration - 30 / fps) < 1 / float(fps)
    for frame in VideoReader(out):
        assert psnr(frame.image, pattern_frame(frame.index, 128, 96)) > 35


def test_source_time_base_is_kept(tmp_path):
    src = make_video(tmp_path / "s.mp4", fps=25, frames=10, time_base=Fraction(1, 12800))
    reader = VideoReader(src)
    assert reader.info.time_base == Fraction(1, 12800)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, width=96, height=64, fps=reader.fps, time_base=reader.info.time_base) as w:
        for f in reader:
            w.write(f.image)
    assert probe_media(out).video.time_base == Fraction(1, 12800)


def test_odd_size_is_padded_by_one_pixel(tmp_path):
    out = _write(tmp_path / "odd.mp4", 5, 65, 49)
    frames = list(VideoReader(out))
    assert frames[0].image.shape == (50, 66, 3)
    assert psnr(frames[3].image[:49, :65], pattern_frame(3, 65, 49)) > 35


def test_audio_from_samples(tmp_path):
    rate = 16000
    t = np.arange(2 * rate) / rate
    clip = AudioClip(samples=(0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), sample_rate=rate)
    out = _write(tmp_path / "a.mp4", 50, 96, 64, audio=clip)
    info = probe_media(out)
    assert info.audio.codec == "aac" and info.audio.sample_rate == rate
    assert abs(info.audio.duration - 2.0) < 0.04


def test_audio_stream_copy_and_transcode(tmp_path):
    src = make_video(tmp_path / "s.mp4", frames=50, audio_rate=44100, audio_channels=2)
    out = _write(tmp_path / "copy.mp4", 50, 96, 64, audio=AudioFromFile(src))
    with av.open(str(src)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert pa == pb  # copied bit for bit

    wav = make_audio(tmp_path / "s.wav", rate=48000, channels=2, seconds=2.0)
    out2 = _write(tmp_path / "pcm.mp4", 50, 96, 64, audio=AudioFromFile(wav))  # PCM cannot go in mp4: re-encoded
    info = probe_media(out2).audio
    assert info.codec == "aac" and info.channels == 2 and abs(info.duration - 2.0) < 0.04


def test_webm_takes_vp9_and_opus_resampled_or_copied(tmp_path):
    wav = make_audio(tmp_path / "s.wav", rate=44100, channels=2, seconds=2.0)
    out = _write(tmp_path / "w.webm", 50, 96, 64, audio=AudioFromFile(wav))  # PCM at 44.1 kHz: Opus at 48 kHz
    info = probe_media(out)
    assert (info.video.codec, info.audio.codec, info.audio.sample_rate) == ("vp9", "opus", 48000)
    assert info.audio.channels == 2 and abs(info.audio.duration - 2.0) < 0.04
    with av.open(str(out)) as c:
        heard = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert abs(heard.shape[1] / 48000 - 2.0) < 0.01 and np.abs(heard).max() > 0.1  # the whole sound, not silence
    again = _write(tmp_path / "again.webm", 50, 96, 64, audio=AudioFromFile(out))
    with av.open(str(out)) as a, av.open(str(again)) as b:
        pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert pa == pb  # Opus into WebM: copied bit for bit
    clip = AudioClip(samples=np.zeros((1, 22050), np.float32), sample_rate=22050)  # encoded at 24 kHz
    assert abs(probe_media(_write(tmp_path / "c.webm", 25, 96, 64, audio=clip)).audio.duration - 1.0) < 0.04


@pytest.mark.parametrize("ext", ["mkv", "webm"])
def test_matroska_files_of_the_same_frames_are_the_same_bytes(tmp_path, ext):
    a, b = (_write(tmp_path / f"{k}.{ext}", 10, 96, 64) for k in "ab")
    assert a.read_bytes() == b.read_bytes()  # no random segment id


def test_audio_span_is_cut(tmp_path):
    wav = make_audio(tmp_path / "s.wav", rate=16000, seconds=3.0)
    out = _write(tmp_path / "cut.mp4", 25, 96, 64, audio=AudioFromFile(wav, start=0.5, duration=1.0))
    assert abs(probe_media(out).audio.duration - 1.0) < 0.04


def test_audio_is_interleaved_with_video(tmp_path):
    src = make_video(tmp_path / "s.mp4", frames=100, audio_rate=44100)
    out = _write(tmp_path / "i.mp4", 100, 96, 64, audio=AudioFromFile(src))
    with av.open(str(out)) as c:
        kinds = [p.stream.type for p, _ in zip(c.demux(), range(60), strict=False) if p.size]
    assert "audio" in kinds[:30] and "video" in kinds[:30]


# -- atomicity -----------------------------------------------------------------------------------------------------
def test_failure_leaves_nothing(tmp_path):
    out = tmp_path / "fail.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, width=96, height=64, fps=Fraction(25)) as w:
            w.write(pattern_frame(0, 96, 64))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_existing_destination(tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(ValueError, match="expected"):
        with VideoWriter(out, width=96, height=64, fps=Fraction(25), overwrite=True) as w:
            w.write(np.zeros((10, 10, 3), np.uint8))  # wrong size
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "x.mp4"
    out.write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        VideoWriter(out, width=96, height=64, fps=Fraction(25))
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(tmp_path / "nodir" / "x.mp4", width=96, height=64, fps=Fraction(25))


def test_a_folder_that_takes_no_file_is_refused_before_any_work(tmp_path, monkeypatch):
    """Root passes ``os.access`` everywhere; the check creates (and removes) a file to know."""
    import os

    monkeypatch.setattr(os, "access", lambda *a, **k: True)  # as root: every folder looks writable
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Read-only file system")
        return real_open(path, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(OutputError, match=r"x\.mp4: folder .*ro is not writable \(Read-only file system\)"):
        VideoWriter(tmp_path / "ro" / "x.mp4", width=96, height=64, fps=Fraction(25))
    monkeypatch.setattr("builtins.open", real_open)
    VideoWriter(tmp_path / "x.mp4", width=96, height=64, fps=Fraction(25))
    assert list(tmp_path.iterdir()) == [tmp_path / "ro"] and not list((tmp_path / "ro").iterdir())  # no probe left


def test_same_frames_give_the_same_bytes(tmp_path):
    """Repeated encodes in one process are identical, whatever the heap held before (x264's AVX-512 code is not)."""
    frames = [face_frame(i, 224, 224) for i in range(24)]
    rng = np.random.default_rng(0)
    digests = set()
    for k in range(4):
        with VideoWriter(tmp_path / f"{k}.mp4", width=224, height=224, fps=Fraction(25)) as writer:
            for image in frames:
                junk = [bytearray(rng.bytes(n)) for n in (224 * 224, 112 * 112, 224 * 224 * 3) * 4]
                del junk  # freed chunks of frame sizes, full of noise, for the encoder's next allocations
                writer.write(image)
        digests.add(hashlib.sha256((tmp_path / f"{k}.mp4").read_bytes()).hexdigest())
    assert len(digests) == 1
