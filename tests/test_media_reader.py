"""Probing and streaming frames: frame rates, containers, odd sizes, rotation, variable frame rate, memory."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest
from media_factory import make_video, pattern_frame, psnr

from dubber.errors import MediaDecodeError, NoVideoStreamError
from dubber.media import VideoReader, probe_media
from dubber.media.probe import is_variable_frame_rate

FRAME_RATES = [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50)]


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov", "webm"])
@pytest.mark.parametrize("fps", FRAME_RATES, ids=lambda f: f"{float(f):.2f}fps")
def test_probe_and_read_exact_counts(tmp_path, ext, fps):
    frames = 37
    path = make_video(tmp_path / f"v.{ext}", fps=fps, frames=frames, width=64, height=48, audio_rate=22050)
    info = probe_media(path)
    v = info.video
    assert v.fps == fps  # exact rational, 30000/1001 included
    assert v.frame_count == frames
    assert abs(v.duration - frames / fps) < 1 / float(fps)
    assert not v.variable_frame_rate
    assert info.audio is not None and abs(info.audio.duration - frames / float(fps)) < 0.1

    reader = VideoReader(path)
    got = list(reader)
    assert len(got) == frames == reader.frame_count
    times = np.array([f.time for f in got])
    assert np.allclose(times, np.arange(frames) / float(fps), atol=0.6e-3 + 1e-6)  # Matroska rounds to 1 ms
    assert all(f.image.flags["C_CONTIGUOUS"] and f.image.dtype == np.uint8 for f in got)
    assert got[0].image.shape == (48, 64, 3)


def test_decoded_frames_match_what_was_encoded(tmp_path):
    path = make_video(tmp_path / "v.mp4", frames=10, width=96, height=64)
    for frame in VideoReader(path):
        assert psnr(frame.image, pattern_frame(frame.index, 96, 64)) > 35


def test_odd_size_is_read_at_its_size(tmp_path):
    path = make_video(tmp_path / "v.mkv", frames=5, width=65, height=49, pix_fmt="yuv444p")
    reader = VideoReader(path)
    assert reader.size == (65, 49)
    frames = list(reader)
    assert len(frames) == 5
    assert frames[2].image.shape == (49, 65, 3)
    assert psnr(frames[2].image, pattern_frame(2, 65, 49)) > 35


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    path = make_video(tmp_path / "r.mp4", frames=3, width=96, height=64, rotation=rotation)
    info = probe_media(path).video
    assert info.rotation == rotation
    reader = VideoReader(path)
    assert reader.size == ((64, 96) if rotation in (90, -90) else (96, 64))
    frame = next(iter(reader))
    expected = np.rot90(pattern_frame(0, 96, 64), k=rotation // 90)
    assert frame.image.shape == expected.shape
    assert psnr(frame.image, expected) > 35


def test_variable_frame_rate_is_detected_and_retimed(tmp_path):
    # 25 fps nominal with irregular gaps (ms clock): 0, 40, 80, 100, 180, 220, ...
    steps = [40, 40, 20, 80, 40, 40, 60, 20, 40, 40, 40, 80, 20, 40, 40, 40]
    pts = np.concatenate([[0], np.cumsum(steps)]).tolist()
    path = make_video(tmp_path / "vfr.mp4", fps=25, frames=len(pts), pts=pts, time_base=Fraction(1, 1000))
    info = probe_media(path).video
    assert info.variable_frame_rate
    raw = list(VideoReader(path, constant_rate=False))
    assert len(raw) == len(pts)
    assert [round(f.time * 1000) for f in raw] == pts
    reader = VideoReader(path)  # re-timed by default for VFR sources
    assert reader.constant_rate
    grid = list(reader)
    assert len(grid) == reader.frame_count == round(info.duration * float(info.fps))
    assert np.allclose([f.time for f in grid], np.arange(len(grid)) / float(info.fps))
    # Each grid slot shows the source frame nearest in time.
    src_times = np.array([f.time for f in raw])
    for f in grid:
        nearest = int(np.argmin(np.abs(src_times - f.time) + 1e-9 * np.arange(len(src_times))))
        assert abs(src_times[f.source_index] - f.time) <= abs(src_times[nearest] - f.time) + 1e-9


@pytest.mark.parametrize("kind", ["raw H.264", "timestamps all zero"])
def test_frames_without_usable_timestamps_are_read_at_the_nominal_rate(tmp_path, kind):
    """A raw H.264 stream carries no timestamps, and a broken muxer can write them all equal: read as 25 fps (its
    nominal rate, 750 fps by the container's average over its 0.04 s), frame i at i / 25."""
    if kind == "raw H.264":
        path = make_video(tmp_path / "v.h264", fps=25, frames=12, width=64, height=48)
    else:
        path = make_video(tmp_path / "v.mp4", fps=25, frames=12, width=64, height=48, pts=[0] * 12)
    v = probe_media(path).video
    assert not v.timestamps and not v.variable_frame_rate
    assert (v.fps, v.frame_count, v.start_time) == (25, 12, 0.0) and v.duration == pytest.approx(12 / 25)
    frames = list(VideoReader(path))
    assert [f.index for f in frames] == list(range(12))
    assert np.allclose([f.time for f in frames], np.arange(12) / 25)
    assert psnr(frames[5].image, pattern_frame(5, 64, 48)) > 35


def test_the_main_picture_is_read_where_a_thumbnail_track_comes_first(tmp_path):
    """A one-frame thumbnail stream before the video (some cameras and exports): a player shows the video, and so
    does the dub (it was read as a still image of the thumbnail)."""
    path = tmp_path / "thumbnail_first.mkv"
    with av.open(str(path), "w") as out:
        thumb = out.add_stream("mjpeg", rate=25)
        thumb.width, thumb.height, thumb.pix_fmt = 32, 32, "yuvj420p"
        main = out.add_stream("libx264", rate=25)
        main.width, main.height, main.pix_fmt = 64, 48, "yuv420p"
        grey = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 128, np.uint8), format="rgb24").reformat(
            format="yuvj420p"
        )
        out.mux(thumb.encode(grey))
        out.mux(thumb.encode(None))
        for i in range(9):
            out.mux(main.encode(av.VideoFrame.from_ndarray(pattern_frame(i, 64, 48), format="rgb24")))
        out.mux(main.encode(None))
    v = probe_media(path).video
    assert (v.index, v.codec, v.width, v.height, v.frame_count) == (1, "h264", 64, 48, 9)
    frames = list(VideoReader(path))
    assert len(frames) == 9 and psnr(frames[4].image, pattern_frame(4, 64, 48)) > 35


@pytest.mark.parametrize(("rotation", "upright"), [(None, Fraction(64, 45)), (90, Fraction(45, 64))])
def test_non_square_pixels_are_described_upright(tmp_path, rotation, upright):
    path = make_video(tmp_path / "v.mp4", frames=3, sample_aspect=Fraction(64, 45), rotation=rotation)
    assert probe_media(path).video.sample_aspect == upright
    assert probe_media(make_video(tmp_path / "square.mp4", frames=3)).video.sample_aspect is None


def test_vfr_detector_tolerates_clock_rounding():
    # 29.97 fps on a 1 ms clock alternates 33/34 ms steps: constant frame rate.
    pts = np.round(np.arange(300) * 1000 / (30000 / 1001)).astype(np.int64)
    assert not is_variable_frame_rate(pts)
    assert is_variable_frame_rate(np.array([0, 40, 80, 100, 180, 220, 260, 280, 360, 400]))


def test_reader_streams_without_holding_the_video(tmp_path):
    short = make_video(tmp_path / "short.mp4", frames=20, width=320, height=240)
    long = make_video(tmp_path / "long.mp4", frames=200, width=320, height=240)

    def peak(path):
        tracemalloc.start()
        for _ in VideoReader(path):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    frame_bytes = 320 * 240 * 3
    p_short, p_long = peak(short), peak(long)
    assert p_long < p_short + 4 * frame_bytes  # 10x the frames, not 10x the memory
    assert p_long < 20 * frame_bytes


def test_audio_only_file_is_not_a_video(tmp_path):
    from media_factory import make_audio

    path = make_audio(tmp_path / "a.m4a")
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        VideoReader(path)


def test_truncated_file_is_reported(tmp_path):
    path = make_video(tmp_path / "t.mp4", frames=50, width=96, height=64, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MediaDecodeError, match="truncated"):
        probe_media(path)
