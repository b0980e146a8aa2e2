"""``dub sync``: the completer's plan of a sound against the tracked mouth, its offset, windows and verdicts."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from dubber.audio.features import AudioFeatures
from dubber.audio.streaming import StreamedFeatures
from dubber.cli.app import run
from dubber.data.clip_arrays import content_opening
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.pipeline.motion import MotionPlanner
from dubber.pipeline.person_references import PersonReferences
from dubber.pipeline.sync_check import FOLLOWS, SyncReading, read_sync
from dubber.pipeline.timeline import Timeline
from tests.conftest import shared_path
from tests.tiny_bundle import moving_tiny_completer

FRAMES = 400  # 16 s at 25 fps: two windows of 10 s (the last 6 s is more than half of one)


@pytest.fixture(scope="module")
def model() -> LandmarkCompleter:
    return moving_tiny_completer()  # a head whose plan depends on its references


def _mel(frames: int) -> AudioFeatures:
    rng = np.random.default_rng(7)
    return AudioFeatures(rng.normal(size=(int(frames / 25 * 80) + 20, 80)).astype(np.float32))


def _track(opening: np.ndarray, points: np.ndarray, has_face: np.ndarray | None = None):
    n = len(opening)
    return SimpleNamespace(
        frames=n, points=points, opening=opening, times=np.arange(n) / 25.0, filled_index=lambda: np.arange(n),
        has_face=np.ones(n, bool) if has_face is None else has_face,
    )  # fmt: skip


def _planned(model, mel, points, refs) -> np.ndarray:
    timeline = Timeline(FRAMES, FRAMES, "pingpong")
    motion = MotionPlanner(model, mel, 25.0, timeline, points, np.arange(FRAMES), refs)
    return content_opening(motion.content(0, FRAMES))


def _read(model, mel, track, refs, **kw):
    features = StreamedFeatures(mel, FRAMES / 25.0, ())
    return read_sync(model, features, track, 25.0, refs, video=SimpleNamespace(name="v"), **kw)


def test_the_offset_between_picture_and_sound_is_read_and_windows_find_where_sync_is_lost(model):
    rng = np.random.default_rng(3)
    mel, points = _mel(FRAMES), rng.uniform(0.2, 0.8, (FRAMES, 131, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    planned = _planned(model, mel, points, refs)
    late = np.full(FRAMES, np.nan, np.float32)  # the mouth shows the sound 3 frames after it is heard
    late[3:] = planned[:-3]
    report = _read(model, mel, _track(late, points), refs)
    assert report.reading.offset == 3 and report.match > 0.99 and report.verdict == "in sync"
    assert report.frames == FRAMES and report.frames_with_face == FRAMES - 3
    assert report.offset_seconds == pytest.approx(0.12) and not report.at_search_edge
    assert [(w.start, w.end) for w in report.windows] == [(0.0, 10.0), (10.0, 16.0)]
    assert all(w.reading.offset == 3 for w in report.windows)
    # The mouth of the last 6 s follows another sound: that window is out of sync, the first is not.
    lost = late.copy()
    lost[250:] = rng.permutation(planned[250:])
    report = _read(model, mel, _track(lost, points), refs)
    first, second = (w.reading.match for w in report.windows)
    assert first > 0.99 and second < 0.3
    # Further apart than the search: not found there; a wider search finds it.
    far = np.full(FRAMES, np.nan, np.float32)
    far[8:] = planned[:-8]
    assert _read(model, mel, _track(far, points), refs, max_offset=0.12).match < 0.3
    wide = _read(model, mel, _track(far, points), refs, max_offset=0.4)
    assert wide.reading.offset == 8 and wide.match > 0.99 and not wide.at_search_edge
    data = wide.to_dict()
    assert data["offset_frames"] == 8 and data["offset_ms"] == 320.0 and data["verdict"] == "in sync"
    assert [w["offset_frames"] for w in data["windows"]] == [8, 8] and data["people"] == []


def test_a_still_mouth_a_faceless_video_and_each_person_are_told(model):
    rng = np.random.default_rng(5)
    mel, points = _mel(FRAMES), rng.uniform(0.2, 0.8, (FRAMES, 131, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    planned = _planned(model, mel, points, refs)
    # A face held on one frame: the tracker's jitter in time with the sound still says nothing.
    held = (0.1 + 1e-4 * (planned - planned.mean()) / planned.std()).astype(np.float32)
    still = _read(model, mel, _track(held, points), refs)
    assert still.match == 0.0 and still.reading.offset is None and not still.mouth_moves
    assert still.verdict == "the mouth does not move"
    none = _read(model, mel, _track(planned, points, np.zeros(FRAMES, bool)), refs)
    assert none.match is None and none.frames_with_face == 0 and none.verdict == "no face"
    # Two people: person 1's mouth (frames 200 on) follows another sound.
    who = (np.arange(FRAMES) >= 200).astype(int)
    people = PersonReferences(rng.uniform(0.2, 0.8, (2, 4, 131, 2)).astype(np.float32), who)
    planned = _planned(model, mel, points, people)
    mixed = planned.copy()
    mixed[200:] = rng.permutation(planned[200:])
    report = _read(model, mel, _track(mixed, points), people)
    assert report.people[0].match > 0.99 and report.people[1].match < 0.3
    assert [r["match"] for r in report.to_dict()["people"]] == [r.match for r in report.people]


def test_verdicts_and_the_summary_line_follow_the_measured_thresholds():
    from dubber.cli.sync_cmd import summary_line
    from dubber.pipeline.sync_check import SyncReport

    def report(match):
        return SyncReport("v", None, 25.0, 100, 100, SyncReading(match, 0 if match is not None else None), 0.16)

    assert report(FOLLOWS).verdict == "in sync"
    assert report(0.3).verdict == report(FOLLOWS - 0.01).verdict == "weakly in sync"
    assert report(0.29).verdict == "not in sync"
    assert report(None).verdict == "too short to tell"
    one = SyncReport("v.mp4", None, 25.0, 90, 80, SyncReading(0.5, 1), 0.16)
    assert summary_line(one) == (
        "v.mp4 against its own sound: in sync (match 0.50); the picture 1 frame (40 ms) behind the sound; 90 frames "
        "compared, 80 with a face"
    )
    early = SyncReport("v.mp4", "a.wav", 25.0, 90, 80, SyncReading(0.1, -4), 0.16)
    assert (
        "not in sync (match 0.10); the picture 4 frames (160 ms) ahead of the sound (the widest searched: try "
        "--max-offset 0.32)" in summary_line(early)
    )
    # The best shift at the widest searched (4 frames of 0.16 s at 25 fps): they may be further apart.
    assert [SyncReport("v", None, 25.0, 9, 9, SyncReading(0.5, k), 0.16).at_search_edge for k in (-4, 3, 4)] == [
        True,
        False,
        True,
    ]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    return TINY_BUNDLE


def test_the_command_checks_videos_and_names_what_it_cannot_check(tmp_path, tiny, capfd):
    from tests.media_factory import make_audio, make_face_video

    video = make_face_video(tmp_path / "talk.mp4", frames=60, audio_rate=16000)
    silent = make_face_video(tmp_path / "silent.mp4", frames=10)
    still = make_face_video(tmp_path / "still.mp4", frames=1)
    speech = make_audio(tmp_path / "speech.wav", seconds=1.0)
    assert run(["sync", str(video), "-w", tiny, "--json"]) == 0
    own = json.loads(capfd.readouterr().out)
    assert own["video"] == str(video) and own["audio"] is None and own["frames"] == 60
    assert own["frames_with_face"] == 60 and own["max_offset"] == 0.16 and len(own["windows"]) == 1
    assert run(["sync", str(video), "-a", str(speech), "-w", tiny, "--json", "--max-offset", "0.4"]) == 0
    other = json.loads(capfd.readouterr().out)
    assert other["audio"] == str(speech) and other["frames"] == 25 and other["max_offset"] == 0.4
    # One bad video is named in one line, exit 2; in a list, the others are still checked, exit 3.
    for bad, problem in [(silent, "has no audio stream"), (still, "is a still image")]:
        capfd.readouterr()
        assert run(["sync", str(bad), "-w", tiny]) == 2
        err = capfd.readouterr().err
        assert f"{bad}: {problem}" in err and "Traceback" not in err
    assert run(["sync", str(video), str(silent), "-w", tiny, "--json"]) == 3
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert lines[0]["video"] == str(video) and "match" in lines[0]
    assert lines[1]["video"] == str(silent) and "has no audio stream" in lines[1]["error"]
    assert run(["sync", str(video), str(video), "-a", str(speech), "-w", tiny]) == 2  # --audio: one video
    # A gate: a match no video can reach fails the command (exit 1) and says how many were below it.
    capfd.readouterr()
    assert run(["sync", str(video), "-w", tiny, "--min-match", "1.0"]) == 1
    assert "1 of 1 below --min-match 1" in capfd.readouterr().err


@pytest.mark.shared_data
def test_a_real_clip_is_in_sync_with_its_own_sound_and_not_with_another(tmp_path, shared_manifest, monkeypatch):
    """katie_hill (a speaker no model trained on): in sync with its own sound; the same sound heard 3 frames
    later, by silence before it or by its timestamps, moves the offset read by 3 frames; another speaker's sound is
    not in sync with it."""
    from dubber.media.audio import decode_audio, write_wav
    from dubber.pipeline import DubbingPipeline
    from tests.media_factory import with_sound_moved

    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    video = shared_path({"path": "dev/katie_hill/SadTalker__WDA_KatieHill_000.mp4"})
    other = shared_path({"path": "dev/kristi_noem/styletalk__KristiNoem.mp4"})
    pipe = DubbingPipeline.from_pretrained(dtype="float32")
    track = pipe.analyse(video)
    own = pipe.check_sync(video, analysis=track)
    assert own.match >= FOLLOWS and own.verdict == "in sync" and abs(own.reading.offset) <= 2
    clip = decode_audio(video)
    later = np.concatenate([np.zeros(round(clip.sample_rate * 3 / 25), np.float32), clip.mono])
    heard_later = write_wav(tmp_path / "later.wav", later, clip.sample_rate)
    assert pipe.check_sync(video, heard_later, analysis=track).at_search_edge  # 5 frames apart: past 0.16 s
    delayed = pipe.check_sync(video, heard_later, max_offset=0.4, analysis=track)
    assert delayed.reading.offset == own.reading.offset - 3 and delayed.match >= FOLLOWS
    assert not delayed.at_search_edge
    # The same sound presented 3 frames late by its timestamps (the samples untouched): read the same way.
    sound = write_wav(tmp_path / "sound.wav", clip.mono, clip.sample_rate)
    moved = with_sound_moved(video, sound, tmp_path / "moved.mkv", 3 / 25)
    assert pipe.check_sync(moved, max_offset=0.4, analysis=track).reading == delayed.reading
    assert pipe.check_sync(video, other, analysis=track).match < 0.3
