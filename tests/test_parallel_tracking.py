"""Pass 1 over several trackers at once (``dubber.pipeline.parallel_tracking``): when it is used, and that it keeps
the sequential pass's frames, faces, spool and errors, its points within MediaPipe's own sensitivity."""

from __future__ import annotations

import numpy as np
import pytest

from dubber.errors import MediaDecodeError
from dubber.face import FaceAligner, FaceTracker
from dubber.face.backends import make_backend
from dubber.media import VideoReader
from dubber.media.yuv_image import YuvImage
from dubber.pipeline.analysis import analyse_video
from dubber.pipeline.frame_source import FrameSpool
from dubber.pipeline.parallel_tracking import analyse_in_segments, tracking_workers
from tests.media_factory import make_face_video, make_video


def _tracker() -> FaceTracker:
    return FaceTracker(make_backend("mediapipe"))


def test_segments_are_tracked_at_once_only_where_cores_and_length_allow():
    assert tracking_workers(2, 10_000, 25.0) == 1  # this machine: one tracker, the sequential pass
    assert tracking_workers(4, 10_000, 25.0) == 1
    assert tracking_workers(8, 10_000, 25.0) == 2
    assert tracking_workers(16, 10_000, 25.0) == 4
    assert tracking_workers(64, 10_000, 25.0) == 4  # at most 4
    assert tracking_workers(16, 250, 25.0) == 2  # 10 s: two segments of 4 s or more
    assert tracking_workers(16, 90, 25.0) == 1  # 3.6 s


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    return make_face_video(folder / "face.mp4", frames=60, no_face=range(40, 44))


@pytest.mark.parametrize("workers", [2, 3])
def test_segments_joined_are_the_sequential_track(clip, tmp_path, workers: int):
    wanted = [0, 5, 21, 39, 59]
    spools = {k: FrameSpool(192, 192, wanted, tmp_path) for k in ("one", "segments")}
    with _tracker() as tracker:
        one = analyse_video(VideoReader(clip), tracker, FaceAligner(128), spool=spools["one"])
    seen = []
    segments = analyse_in_segments(
        VideoReader(clip), _tracker, FaceAligner(128), workers, spool=spools["segments"], progress=seen.append
    )
    assert segments.frames == one.frames == 60 and sorted(seen) == list(range(1, 61))
    np.testing.assert_array_equal(segments.times, one.times)
    np.testing.assert_array_equal(segments.has_face, one.has_face)
    assert not segments.has_face[40:44].any() and segments.most_faces == one.most_faces == 1
    # A segment's tracker settles on a second of warm-up; MediaPipe's points still move with where its region of
    # interest sits (here up to a crop pixel: the
    # sequential tracker's region was placed by frame 0's detection, a segment's by its warm-up's first frame).
    face = one.has_face
    assert np.abs(segments.points[face] - one.points[face]).max() * 128 < 1.5
    assert np.abs(segments.opening[face] - one.opening[face]).max() < 0.02
    assert len(segments.pool) > 0 and segments.seconds["track"] > 0
    assert spools["segments"].holds(wanted)
    for i in wanted:  # kept as decoded, to be written as decoded
        kept = spools["segments"].read(i)
        assert isinstance(kept, YuvImage)
        np.testing.assert_array_equal(kept.data, spools["one"].read(i).data)


def test_a_decoding_error_is_raised_as_the_sequential_pass_raises_it(tmp_path):
    truncated = make_video(tmp_path / "truncated.mp4", frames=60, faststart=True)
    truncated.write_bytes(truncated.read_bytes()[:-4000])
    with pytest.raises(MediaDecodeError) as sequential, _tracker() as tracker:
        analyse_video(VideoReader(truncated), tracker, FaceAligner(128))
    with pytest.raises(MediaDecodeError) as segmented:
        analyse_in_segments(VideoReader(truncated), _tracker, FaceAligner(128), 2)
    assert str(segmented.value) == str(sequential.value)


def test_a_dub_tracked_in_segments_is_a_whole_dub(tmp_path, monkeypatch):
    from dubber import DubbingPipeline
    from dubber.pipeline import face_pass
    from tests.media_factory import make_audio
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    pipe = DubbingPipeline.from_pretrained(make_tiny_weights(tmp_path / "weights") / TINY_BUNDLE, device="cpu")
    clip = make_face_video(tmp_path / "face.mp4", frames=30)
    speech = make_audio(tmp_path / "speech.wav", seconds=2.0)  # 50 frames: ping-pong reads the spool
    calls = []
    monkeypatch.setattr(face_pass, "tracking_workers", lambda cores, frames, fps: calls.append(frames) or 2)
    result = pipe(clip, speech, tmp_path / "out.mp4", steps=1)
    assert calls == [30] and result.frames == 50 and result.face_frames == 50


def test_a_large_host_counts_the_cores_idle_now_and_a_small_one_does_not_sample(monkeypatch):
    from dubber.pipeline import face_pass

    sampled = []
    monkeypatch.setattr(face_pass, "free_cores", lambda: sampled.append(1) or 5)
    monkeypatch.setattr(face_pass, "usable_cores", lambda: 16)
    assert face_pass.idle_cores() == 5 and sampled == [1]  # a batch's other workers hold the rest
    monkeypatch.setattr(face_pass, "usable_cores", lambda: 2)
    assert face_pass.idle_cores() == 2 and sampled == [1]  # no 0.1 s sample where segments never run


def test_a_video_too_short_for_two_segments_does_not_wait_to_count_idle_cores(monkeypatch):
    from dubber.pipeline import face_pass

    sampled = []
    monkeypatch.setattr(face_pass, "free_cores", lambda: sampled.append(1) or 5)
    monkeypatch.setattr(face_pass, "usable_cores", lambda: 16)
    assert face_pass.idle_cores(90, 25.0) == 16 and sampled == []  # 3.6 s: one tracker whatever the cores
    assert face_pass.idle_cores(250, 25.0) == 5 and sampled == [1]
