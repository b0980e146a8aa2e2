"""The plan spread to the speaker's own range: the gain read from the video's own speech, the spread about the
speaker's mean mouth, and a dub that reports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dubber.audio.features import AudioFeatures
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.pipeline import Timeline
from dubber.pipeline.articulation import MAX_GAIN, MIN_FRAMES, gain_from_openings
from dubber.pipeline.motion import MotionPlanner, Spread
from dubber.pipeline.mouth_lag import MIN_CORRELATION
from tests.tiny_bundle import moving_tiny_completer


def test_the_gain_is_the_square_root_of_the_speakers_range_over_the_plans_within_its_bounds():
    rng = np.random.default_rng(0)
    planned = rng.normal(0.2, 0.05, 200)
    assert abs(gain_from_openings(planned, 0.3 + 2.0 * (planned - 0.2)) - np.sqrt(2.0)) < 1e-6
    assert gain_from_openings(planned, 0.3 + 9.0 * planned) == MAX_GAIN  # at most
    assert gain_from_openings(planned, 0.3 + 0.5 * planned) == 1.0  # a plan that moves more is not shrunk
    few = np.full(200, np.nan)
    few[: MIN_FRAMES - 1] = planned[: MIN_FRAMES - 1]
    assert gain_from_openings(few, 3.0 * planned) == 1.0  # too few frames seen: no evidence
    gaps = 0.3 + 2.0 * (planned - 0.2)
    gaps[::3] = np.nan  # frames without a face are left out
    assert abs(gain_from_openings(planned, gaps) - np.sqrt(2.0)) < 1e-6
    assert gain_from_openings(np.full(200, 0.2), planned) == 1.0  # a plan that never moves


def test_the_planner_spreads_every_chunk_alike():
    torch.manual_seed(0)
    model = LandmarkCompleter(LandmarkCompleterConfig.named("tiny")).eval()
    rng = np.random.default_rng(0)
    frames = 23
    mel = AudioFeatures(rng.normal(size=(int(frames / 25 * 80) + 20, 80)).astype(np.float32))
    points = rng.uniform(0.2, 0.8, (frames, 131, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    timeline = Timeline(frames, frames, "pingpong")
    plain = MotionPlanner(model, mel, 25.0, timeline, points, np.arange(frames), refs)
    centre = rng.uniform(0.3, 0.7, (57, 2)).astype(np.float32)
    spread = MotionPlanner(model, mel, 25.0, timeline, points, np.arange(frames), refs, spread=Spread(1.3, centre))
    expected = centre + 1.3 * (plain.content(0, frames) - centre)
    for chunk in (1, 5, 23):
        parts = np.concatenate([spread.content(s, min(s + chunk, frames)) for s in range(0, frames, chunk)])
        np.testing.assert_allclose(parts, expected, atol=1e-5)


def test_the_spread_is_read_from_the_videos_own_speech_against_its_tracked_mouth():
    from types import SimpleNamespace

    from dubber.audio.streaming import StreamedFeatures
    from dubber.data.clip_arrays import content_opening
    from dubber.pipeline.articulation import read_own_speech

    model = moving_tiny_completer()  # a head whose plan moves
    rng = np.random.default_rng(0)
    frames = 60
    mel = AudioFeatures(rng.normal(size=(int(frames / 25 * 80) + 20, 80)).astype(np.float32))
    points = rng.uniform(0.2, 0.8, (frames, 131, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    has_face = np.ones(frames, bool)
    has_face[10:15] = False
    track = SimpleNamespace(frames=frames, points=points, has_face=has_face, filled_index=lambda: np.arange(frames))
    own = MotionPlanner(model, mel, 25.0, Timeline(frames, frames, "pingpong"), points, np.arange(frames), refs)
    content = own.content(0, frames)
    planned = content_opening(content)
    assert planned.std() > 1e-3

    def spread_for(scale):
        track.opening = planned.mean() + scale * (planned - planned.mean())  # the speaker moves `scale` times as much
        streamed = StreamedFeatures(mel, frames / 25.0, ())
        return read_own_speech(model, streamed, track, 25.0, refs).spread

    spread = spread_for(2.0)
    assert abs(spread.gain - np.sqrt(2.0)) < 1e-4
    np.testing.assert_allclose(spread.centre, content[has_face].mean(0), atol=1e-5)  # the plan's mean, face frames
    assert spread_for(9.0).gain == MAX_GAIN
    assert spread_for(0.7) is None  # a plan that moves as much as the speaker or more is left alone
    late = np.full(frames, np.nan, np.float32)
    late[2:] = planned[:-2]  # the mouth 2 frames behind the sound it was planned from
    track.opening = late
    reading = read_own_speech(model, StreamedFeatures(mel, frames / 25.0, ()), track, 25.0, refs)
    assert reading.lag == 2 and reading.match > 0.99
    # A mouth that does not follow the video's sound (a voice-over): read as such, and not spread by it.
    other = rng.permutation(planned)
    track.opening = planned.mean() + 3.0 * (other - planned.mean())
    reading = read_own_speech(model, StreamedFeatures(mel, frames / 25.0, ()), track, 25.0, refs)
    assert reading.match < MIN_CORRELATION and reading.lag is None and reading.spread is None


def test_a_dub_draws_the_spread_plan_and_reports_its_gain(tmp_path, monkeypatch):
    from dubber import DubbingPipeline
    from dubber.pipeline import dubbing
    from dubber.pipeline.articulation import OwnSpeech
    from tests.media_factory import make_audio, make_face_video
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    video = make_face_video(tmp_path / "talk.mp4", frames=30, audio_rate=16000)
    speech = make_audio(tmp_path / "speech.wav", seconds=1.2)
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")
    analysis = pipe.analyse(video)
    plain = pipe.planned_landmarks(analysis, speech)
    centre = plain[:, 74:].mean(0)
    spread = Spread(1.5, centre)
    reads = []
    monkeypatch.setattr(dubbing, "read_own_speech", lambda *args: reads.append(args) or OwnSpeech(spread, None))
    wide = pipe(video, speech, tmp_path / "wide.mp4", crf=0, preset="ultrafast", analysis=analysis)
    again = pipe(video, speech, tmp_path / "again.mp4", crf=0, preset="ultrafast", analysis=analysis)
    assert len(reads) == 1  # dubs of one analysed video read its speech once
    assert again.output.read_bytes() == wide.output.read_bytes()
    flat = pipe(video, speech, tmp_path / "flat.mp4", crf=0, preset="ultrafast", articulation=False)
    assert wide.settings["articulation_gain"] == 1.5 and flat.settings["articulation_gain"] == 1.0
    assert wide.output.read_bytes() != flat.output.read_bytes()  # the spread plan drew other mouths
    pipe(video, speech, tmp_path / "fresh.mp4", crf=0, preset="ultrafast")
    assert len(reads) == 2  # another analysis of the video: read again
    planned = pipe.planned_landmarks(analysis, speech, spread=spread)
    np.testing.assert_allclose(planned[:, 74 + 17 :], (centre + 1.5 * (plain[:, 74:] - centre))[:, 17:], atol=1e-5)
    still = make_face_video(tmp_path / "still.mp4", frames=1)
    assert pipe.own_speech(still, pipe.analyse(still)) == OwnSpeech(None, None)  # a still has no speech to read


def test_a_video_whose_own_audio_cannot_be_read_is_dubbed_unwidened(tmp_path, monkeypatch, caplog):
    from dubber import DubbingPipeline
    from dubber.errors import MediaDecodeError
    from dubber.pipeline import dubbing
    from tests.media_factory import make_audio, make_face_video
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    video = make_face_video(tmp_path / "talk.mp4", frames=30, audio_rate=16000)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.6)
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")

    def unreadable(*args):
        raise MediaDecodeError(video, "corrupt audio packet")

    monkeypatch.setattr(dubbing, "read_own_speech", unreadable)
    broken = pipe(video, speech, tmp_path / "broken.mp4", crf=0, preset="ultrafast")
    flat = pipe(video, speech, tmp_path / "flat.mp4", crf=0, preset="ultrafast", articulation=False)
    assert broken.settings["articulation_gain"] == 1.0
    assert broken.output.read_bytes() == flat.output.read_bytes()
    assert "its own audio could not be read" in caplog.text


def test_the_videos_own_lag_is_logged_and_does_not_move_the_dub(tmp_path, monkeypatch, caplog):
    import logging

    from dubber import DubbingPipeline
    from dubber.pipeline import dubbing
    from dubber.pipeline.articulation import OwnSpeech
    from tests.media_factory import make_audio, make_face_video
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    video = make_face_video(tmp_path / "talk.mp4", frames=30, audio_rate=16000)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.6)
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")
    monkeypatch.setattr(dubbing, "read_own_speech", lambda *args: OwnSpeech(None, 2))
    monkeypatch.setattr(logging.getLogger("dubber"), "propagate", True)  # the CLI's tests leave it to their handler
    with caplog.at_level(logging.INFO, logger="dubber"):  # ...and at warnings
        late = pipe(video, speech, tmp_path / "late.mp4", crf=0, preset="ultrafast")
    assert "its picture runs 2 frames (80 ms) behind its own sound" in caplog.text
    monkeypatch.setattr(dubbing, "read_own_speech", lambda *args: OwnSpeech(None, None))
    timed = pipe(video, speech, tmp_path / "timed.mp4", crf=0, preset="ultrafast")
    assert late.output.read_bytes() == timed.output.read_bytes()  # the new audio does not carry the source's offset


def test_a_fresh_dub_hears_its_videos_own_speech_once_beside_the_new_speech(tmp_path, monkeypatch):
    import threading

    from dubber import DubbingPipeline
    from tests.media_factory import make_audio, make_face_video
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    video = make_face_video(tmp_path / "talk.mp4", frames=30, audio_rate=16000)
    speech = make_audio(tmp_path / "speech.wav", seconds=1.2)
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")
    heard, features = [], pipe._audio_features

    def hearing(audio, max_seconds=None, seconds=None, lead=0.0):
        heard.append((Path(audio).name, threading.current_thread().name))
        return features(audio, max_seconds=max_seconds, seconds=seconds, lead=lead)

    monkeypatch.setattr(pipe, "_audio_features", hearing)
    ahead = pipe(video, speech, tmp_path / "ahead.mp4", crf=0, preset="ultrafast")
    assert sorted(name for name, _ in heard) == ["speech.wav", "talk.mp4"]  # each once
    assert [thread.startswith("dub-hear-ahead") for name, thread in heard if name == "talk.mp4"] == [True]
    heard.clear()  # given an analysis (it may have been read before), the dub hears the video when it reads it
    later = pipe(video, speech, tmp_path / "later.mp4", crf=0, preset="ultrafast", analysis=pipe.analyse(video))
    assert sorted(name for name, _ in heard) == ["speech.wav", "talk.mp4"]
    assert later.output.read_bytes() == ahead.output.read_bytes()
    heard.clear()
    pipe(video, speech, tmp_path / "flat.mp4", crf=0, preset="ultrafast", articulation=False)
    assert [name for name, _ in heard] == ["speech.wav"]  # not read, not heard


def test_speech_heard_ahead_is_taken_once_and_closed_if_never_taken():
    from dubber.errors import MediaDecodeError
    from dubber.pipeline.articulation import HeardSpeech

    class Features:
        closed = 0

        def close(self):
            self.closed += 1

    taken = HeardSpeech(Features)
    got = taken.take()
    assert isinstance(got, Features) and taken.take() is None
    taken.close()
    assert got.closed == 0  # the reading that took them closes them
    left = Features()
    untaken = HeardSpeech(lambda: left)
    untaken.close()
    assert left.closed == 1 and untaken.take() is None

    def unreadable():
        raise MediaDecodeError(Path("talk.mp4"), "corrupt audio packet")

    failed = HeardSpeech(unreadable)
    with pytest.raises(MediaDecodeError):
        failed.take()
    failed.close()
    HeardSpeech(unreadable).close()  # what was never taken is dropped, error and all
