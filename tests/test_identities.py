"""Who is on screen: runs of tracked frames told apart by the look of the upper face, a pool kept per person, and
each frame's references taken from its own person's frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dubber.face.identities import SAME_PERSON, Identities, People, face_look, pose_bin
from dubber.media import VideoReader, VideoWriter
from dubber.media.encode_options import VideoEncodeOptions
from dubber.pipeline.face_pass import track_video
from dubber.pipeline.face_redraw import ReferenceSet
from dubber.pipeline.reference_pool import ReferencePool
from tests.conftest import shared_path
from tests.media_factory import face_frame


def _look(rng: np.random.Generator, base: np.ndarray | None = None, noise: float = 0.3) -> np.ndarray:
    v = rng.standard_normal(384) if base is None else base + noise * rng.standard_normal(384) / np.sqrt(384)
    v -= v.mean()
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_a_look_ignores_brightness_and_contrast_but_not_the_face():
    crop = face_frame(0, 128, 128)
    look = face_look(crop)
    assert look.shape == (384,) and abs(float(np.linalg.norm(look)) - 1) < 1e-5
    dimmer = np.clip(crop.astype(np.float32) * 0.7 + 20, 0, 255).astype(np.uint8)
    assert float(look @ face_look(dimmer)) > 0.98
    assert float(look @ face_look(np.ascontiguousarray(crop[::-1]))) < SAME_PERSON  # upside down: another face


def test_runs_that_look_alike_are_one_person_and_short_runs_found_no_one():
    rng = np.random.default_rng(0)
    a, b = _look(rng), _look(rng)
    people = Identities()
    assert people.assign(0, 10 * _look(rng, a), frames=40, looks=10) == 0
    assert people.assign(40, 10 * _look(rng, b), frames=40, looks=10) == 1  # another face
    assert people.assign(80, 10 * _look(rng, a), frames=30, looks=10) == 0  # the first again
    assert people.assign(110, 3 * _look(rng), frames=3, looks=3) in (0, 1)  # three looks: too few to be new
    assert people.assign(113, None, frames=5, looks=0) == people.of_run[110]  # never facing the camera: as before
    short = people.of_run[110]
    assert people.frames == [70 + 8 * (short == 0), 40 + 8 * (short == 1)]
    first = Identities()
    assert first.assign(0, None, frames=5, looks=0) == -1  # nothing told it yet
    assert first.assign(5, 10 * a, frames=20, looks=10) == 0 and first.of_run[0] == 0  # the first person told
    assert first.frames == [25] and Identities().main() == -1
    assert people.main() == 0 and people.of_run[80] == 0


def test_poses_a_look_is_compared_in():
    assert pose_bin((0.0, 0.0)) == pose_bin((-12.0, 15.0)) == 0  # facing the camera
    assert pose_bin((12.5, 0.0)) == 1 and pose_bin((-16.9, 0.0)) == -1 and pose_bin((-17.0, 0.0)) == -2
    assert pose_bin((34.0, 5.0)) == 5 and pose_bin((36.0, 0.0)) is None and pose_bin((0.0, 16.0)) is None


def test_turned_runs_are_told_apart_in_the_poses_both_were_seen_in():
    """An interview whose speakers never face the camera: runs are compared in the turned poses they share, and a
    run seen only in poses no one else was is the run before it's person."""
    rng = np.random.default_rng(3)
    a, b = _look(rng), _look(rng)

    def turned(base, poses):
        return {pose: (count * _look(rng, base), count) for pose, count in poses.items()}

    people = Identities()
    assert people.assign(0, None, 40, 0, turned(a, {-3: 20, -4: 20})) == 0  # the first person, never frontal
    assert people.assign(40, None, 40, 0, turned(b, {-4: 10, -5: 30})) == 1  # another face at -4
    assert people.assign(80, None, 40, 0, turned(a, {-4: 30, -5: 5})) == 0  # A again, B's pose -5 in common too
    assert people.assign(120, None, 40, 0, turned(b, {-5: 40})) == 1  # only B was seen at -5 ... until A was
    assert people.assign(160, None, 30, 0, turned(b, {3: 30})) == 1  # a pose no one was seen in: as the run before
    assert people.assign(190, 10 * _look(rng, a), 20, 10) == 1  # facing the camera, no one was: as before
    assert people.frames == [80, 130] and not people.looks[0].any() and not people.looks[1].any()
    frontal = Identities()
    assert frontal.assign(0, 10 * _look(rng, a), 20, 10, turned(a, {2: 10})) == 0
    assert frontal.assign(20, 10 * _look(rng, b), 20, 10, turned(a, {2: 10})) == 1  # facing the camera rules


def test_after_a_scene_cut_a_run_in_a_pose_no_one_was_seen_in_is_someone_new():
    """An interview filmed from two sides: A only ever turned, B only facing the camera, each shot after a cut."""
    rng = np.random.default_rng(5)
    a, b = _look(rng), _look(rng)
    people = Identities()
    assert people.assign(0, None, 40, 0, {4: (30 * _look(rng, a), 30)}) == 0
    assert people.assign(40, 10 * _look(rng, b), 40, 10, after_cut=True) == 1  # nothing to compare: a new person
    assert people.assign(80, None, 40, 0, {4: (20 * _look(rng, a), 20)}, after_cut=True) == 0  # A's pose again
    assert people.assign(120, 10 * _look(rng, b), 40, 10, after_cut=True) == 1  # B facing the camera again
    assert people.assign(160, None, 40, 0, {-3: (5 * _look(rng, b), 5)}, after_cut=True) == 1  # too few looks
    assert people.assign(200, None, 40, 0, {-3: (20 * _look(rng, b), 20)}) == 1  # no cut: the run before's
    tracked = People()
    tracked.start_run(0)
    tracked.saw_cut()
    tracked.start_run(10)
    assert tracked.run.after_cut and not tracked.cut
    tracked.start_run(20)  # a loss, or a look cut: no scene cut
    assert not tracked.run.after_cut


def test_a_run_keeps_its_looks_by_pose(monkeypatch):
    rng = np.random.default_rng(4)
    a = _look(rng)
    monkeypatch.setattr(People, "look_of", lambda self, crop: _look(rng, a, noise=0.05))
    people = People()
    people.start_run(0)
    for index, yaw in enumerate([0.0, 5.0, -14.0, -15.0, 20.0, 40.0]):
        assert people.see(index, (yaw, 0.0), lambda: None) is None
    run = people.run
    assert run.looks == 2 and run.frames == 6 and {p: n for p, (_, n) in run.turned.items()} == {-1: 2, 2: 1}
    people.end_run()
    assert people.identities.turned[0][-1][1] == 2 and people.identities.of_run == {0: 0}


def _offer_run(pool: ReferencePool, first: int, look: np.ndarray | None, openings, turn: float = 0.0) -> None:
    pool.start_run(first)
    for k, o in enumerate(openings):
        crop = np.full((128, 128, 3), first % 251, np.uint8)
        if look is not None:
            pool.people.run.add(look, first + k)  # the look a frame of this face would give
        pool.offer(first + k, o, (turn, 0.0), True, lambda c=crop: c, np.zeros((131, 2), np.float32))


def test_the_pool_keeps_each_persons_frames_and_one_person_as_before(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = _look(rng), _look(rng)
    monkeypatch.setattr("dubber.face.identities.People.look_of", lambda self, crop: None)
    openings = np.linspace(0.0, 0.5, 12)
    two = ReferencePool()
    _offer_run(two, 0, a, openings)
    _offer_run(two, 12, b, openings)
    _offer_run(two, 24, a, openings[::-1], turn=2.0)  # the same bins, more turned: the first run's frames stay
    held = two.held()
    assert [e.identity for e in held].count(0) == 12 and [e.identity for e in held].count(1) == 12
    assert all(e.index < 12 for e in held if e.identity == 0)
    one, together = ReferencePool(), ReferencePool()
    _offer_run(one, 0, None, openings)  # turned away: nobody told yet, then the person of the runs after
    _offer_run(one, 12, a, openings[::-1])
    _offer_run(one, 24, a, openings, turn=2.0)
    _offer_run(together, 0, a, [*openings, *openings[::-1], *openings])
    assert [(e.index, e.identity) for e in one.held()] == [(e.index, e.identity) for e in together.held()]
    assert {e.identity for e in one.held()} == {0} and all(e.index < 12 for e in one.held())


def test_segments_tracked_at_once_tell_the_people_one_tracker_tells(monkeypatch):
    """Pass 1 in segments: a short shot of B after a cut in a segment that saw only A is B, as in one pass (its
    segment alone would have had only A to join it to)."""
    rng = np.random.default_rng(2)
    a, b = _look(rng), _look(rng)
    monkeypatch.setattr("dubber.face.identities.People.look_of", lambda self, crop: None)
    openings = np.linspace(0.0, 0.5, 12)
    runs = [  # (first frame, look, openings, turn): segment one, then segment two
        [(0, None, openings[:4], 0.0), (4, a, openings, 0.0), (16, b, openings, 0.0)],
        [(28, a, openings[::-1], 1.0), (40, b, openings[:3], 0.0), (43, None, openings[3:6], 0.0)],
    ]
    one = ReferencePool()
    segments = [ReferencePool.segment(), ReferencePool.segment()]
    for pool, segment_runs in zip(segments, runs, strict=True):
        for first, look, run_openings, turn in segment_runs:
            _offer_run(pool, first, None if look is None else _look(rng, look), run_openings, turn)
            _offer_run(one, first, None if look is None else _look(rng, look), run_openings, turn)
    merged = ReferencePool()
    for segment in segments:
        merged.merge(segment)
    assert [(e.index, e.identity) for e in merged.held()] == [(e.index, e.identity) for e in one.held()]
    assert merged.identities.of_run == one.identities.of_run == {0: 0, 4: 0, 16: 1, 28: 0, 40: 1, 43: 1}
    assert merged.identities.frames == one.identities.frames == [28, 18]


def test_a_frame_is_hinted_by_its_own_persons_frames():
    shapes = torch.rand(3, 131, 2, generator=torch.Generator().manual_seed(0))
    refs = ReferenceSet(
        landmark_sets=np.zeros((1, 131, 2), np.float32),
        crops=torch.zeros(1, 3, 8, 8),
        points=torch.zeros(1, 131, 2),
        tokens={},
        pool_crops=torch.zeros(3, 3, 8, 8),
        pool_points=shapes,
        pool_yaw=torch.zeros(3),
        pool_identity=torch.tensor([0, 1, 1]),
    )
    target = shapes[:1].expand(3, -1, -1)  # every frame's mouth is pool frame 0's
    order = refs.nearest_order(target, 2, identity=torch.tensor([0, 1, -1]))
    assert order[0, 0] == 0 and order[1, 0] in (1, 2) and order[1, 1] in (1, 2) and order[2, 0] == 0
    assert refs.nearest_order(target, 1).flatten().tolist() == [0, 0, 0]  # without identities: as before


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory, shared_manifest):
    """Two speakers' clips cut together (A B A, 30 frames each) in the same framing and colours, so that the
    scene-cut test misses the cuts and the tracker follows from one face to the other."""
    import cv2

    clips = [shared_path({"path": p}) for p in (
        "dev/katie_hill/SadTalker__WDA_KatieHill_000.mp4",
        "train/aoc/SadTalker__WDA_AlexandriaOcasioCortez_000.mp4",
    )]  # fmt: skip
    from dubber.media.audio_feed import AudioFromFile
    from tests.media_factory import make_audio

    folder = tmp_path_factory.mktemp("cut")
    video, sound = folder / "shots.mp4", AudioFromFile(make_audio(folder / "sound.wav", seconds=3.6))
    options = VideoEncodeOptions(crf=14, preset="veryfast")
    with VideoWriter(video, width=256, height=256, fps=25, options=options, audio=sound) as w:
        for clip, first in ((clips[0], 0), (clips[1], 0), (clips[0], 0)):  # shots that face the camera
            for frame in VideoReader(clip):
                if first <= frame.index < first + 30:
                    w.write(cv2.resize(frame.image, (256, 256), interpolation=cv2.INTER_AREA))
    return video


@pytest.mark.shared_data
def test_two_people_cut_together_are_told_apart(cut_clip):
    track = track_video(cut_clip, 128)
    identity = track.identity()
    assert set(identity[:30]) == {0} and set(identity[30:60]) == {1} and set(identity[60:]) == {0}
    held = track.pool.held()
    assert {e.identity for e in held} == {0, 1}
    assert all((e.index < 30 or e.index >= 60) == (e.identity == 0) for e in held)
    refs = track.references_by_person(15)  # the completer's: a set per person, each frame its own person's
    assert refs.sets.shape == (2, 15, 131, 2) and refs.of_frame.tolist() == [0] * 30 + [1] * 30 + [0] * 30
    assert (
        track.person_order() == [0, 1] and track.person_frames(1).tolist() == [False] * 30 + [True] * 30 + [False] * 30
    )
    from dubber.inspection import inspect_video

    report = inspect_video(cut_clip).to_dict()  # what `dub inspect` lists, as --person counts them
    assert report["people"] == 2
    assert report["persons"] == [
        {"person": 0, "frames": 60, "first_seen": 0.0},
        {"person": 1, "frames": 30, "first_seen": 1.2},
    ]


@pytest.mark.shared_data
def test_trackers_at_once_tell_the_same_people_apart(cut_clip):
    """Pass 1 in two segments (a host with cores to spare): each segment's people matched to the earlier one's."""
    from dubber.face import FaceAligner, FaceTracker
    from dubber.face.backends import make_backend
    from dubber.pipeline.parallel_tracking import analyse_in_segments

    track = analyse_in_segments(
        VideoReader(cut_clip), lambda: FaceTracker(make_backend("mediapipe")), FaceAligner(128), 2
    )
    identity = track.identity()
    assert set(identity[:30]) == {0} and set(identity[30:60]) == {1} and set(identity[60:]) == {0}
    assert {e.identity for e in track.pool.held()} == {0, 1} and len(track.pool.identities.looks) == 2


@pytest.mark.shared_data
def test_a_dub_of_one_person_keeps_the_others_frames(cut_clip, tmp_path, monkeypatch, capfd):
    """``--person 1``: only the second person's frames are redrawn; the first person's are the source's, exactly."""
    from dubber.cli.app import run
    from dubber.media.transcode import reencode
    from tests.media_factory import make_audio
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    speech, out, plain = make_audio(tmp_path / "s.wav", seconds=3.6), tmp_path / "out.mp4", tmp_path / "plain.mp4"
    lossless = ["--crf", "0", "--preset", "ultrafast", "--weights", TINY_BUNDLE]
    assert run(["video", str(cut_clip), "-a", str(speech), "-o", str(out), "--person", "1", "--json", *lossless]) == 0
    result = json.loads(capfd.readouterr().out)
    assert result["settings"]["person"] == 1 and result["settings"]["people"] == 2 and result["face_frames"] == 30
    reencode(cut_clip, plain, options=VideoEncodeOptions(crf=0, preset="ultrafast"))
    dubbed, source = [f.image for f in VideoReader(out)], [f.image for f in VideoReader(plain)]
    assert len(dubbed) == len(source) == 90
    for i in [*range(30), *range(60, 90)]:
        np.testing.assert_array_equal(dubbed[i], source[i])
    assert all(np.abs(dubbed[i].astype(int) - source[i]).max() > 0 for i in range(30, 60))
    refused = tmp_path / "x.mp4"
    assert run(["video", str(cut_clip), "-a", str(speech), "-o", str(refused), "--person", "2", *lossless]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--person 2 needs 3 people told apart and the video shows 2 people" in err[0]
    assert not refused.exists()


@pytest.mark.shared_data
def test_only_the_speakers_are_dubbed(cut_clip, tmp_path, monkeypatch, capfd):
    """``--only-speaking``: a person whose mouth does not follow the video's sound (read here as given) is kept."""
    from dubber.cli.app import run
    from dubber.media.transcode import reencode
    from dubber.pipeline.speaking_people import SpeakingPeople
    from tests.media_factory import make_audio
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    monkeypatch.setattr("dubber.pipeline.dubbing.read_speaking", lambda *a, **k: SpeakingPeople((0.1, 0.6)))
    speech, out, plain = make_audio(tmp_path / "s.wav", seconds=3.6), tmp_path / "out.mp4", tmp_path / "plain.mp4"
    lossless = ["--crf", "0", "--preset", "ultrafast", "--weights", TINY_BUNDLE]
    assert run(["video", str(cut_clip), "-a", str(speech), "-o", str(out), "--only-speaking", "--json", *lossless]) == 0
    result = json.loads(capfd.readouterr().out)
    assert result["settings"]["speaking"] == [1] and result["face_frames"] == 30
    assert result["settings"]["kept_shots"] == []  # a reading of people alone, no shots
    reencode(cut_clip, plain, options=VideoEncodeOptions(crf=0, preset="ultrafast"))
    dubbed, source = [f.image for f in VideoReader(out)], [f.image for f in VideoReader(plain)]
    for i in [*range(30), *range(60, 90)]:  # person 0, a listener here
        np.testing.assert_array_equal(dubbed[i], source[i])
    monkeypatch.setattr("dubber.pipeline.dubbing.read_speaking", lambda *a, **k: SpeakingPeople((0.1, 0.2)))
    assert (
        run(["video", str(cut_clip), "-a", str(speech), "-o", str(out), "--only-speaking", "--overwrite", *lossless])
        == 0
    )
    assert "no one's mouth follows the video's own sound" in capfd.readouterr().err  # then everyone is dubbed
    both = ["--only-speaking", "--person", "0"]
    assert run(["video", str(cut_clip), "-a", str(speech), "-o", str(tmp_path / "x.mp4"), *both, *lossless]) == 2
    assert "give one" in capfd.readouterr().err


@pytest.mark.shared_data
def test_dubs_of_one_analysed_video_read_who_speaks_once(cut_clip, tmp_path, monkeypatch):
    from dubber import DubbingPipeline
    from dubber.pipeline import speaking_people
    from tests.media_factory import make_audio
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    calls = []
    real = speaking_people.read_speaking
    monkeypatch.setattr("dubber.pipeline.dubbing.read_speaking", lambda *a, **k: calls.append(1) or real(*a, **k))
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")
    track = pipe.analyse(cut_clip)
    for k, seconds in enumerate((1.0, 1.4)):  # as dub batch does: many audios onto one video
        speech = make_audio(tmp_path / f"s{k}.wav", seconds=seconds)
        result = pipe(cut_clip, speech, tmp_path / f"o{k}.mp4", analysis=track, speaking_only=True)
        assert result.face_frames > 0
    assert len(calls) == 1  # the second dub took the first one's reading
