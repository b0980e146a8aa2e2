"""The completer's references per person: in a video of two people each frame is planned from reference landmark
sets of its own person, chunk by chunk as in one pass, spread about its own person's mean plan; one person's
video is planned as before."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dubber.audio.features import AudioFeatures
from dubber.audio.streaming import StreamedFeatures
from dubber.models import LandmarkCompleter, predict_sequence
from dubber.pipeline import Timeline
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.articulation import read_own_speech
from dubber.pipeline.motion import MotionPlanner, Spread
from dubber.pipeline.person_references import PersonReferences
from dubber.pipeline.reference_pool import ReferencePool
from tests.tiny_bundle import moving_tiny_completer

FRAMES, CUT = 40, 18  # person 0 before the cut, person 1 from it


@pytest.fixture(scope="module")
def model() -> LandmarkCompleter:
    return moving_tiny_completer()  # a head whose plan depends on its references


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    mel = AudioFeatures(rng.normal(size=(int(FRAMES / 25 * 80) + 20, 80)).astype(np.float32))
    points = rng.uniform(0.2, 0.8, (FRAMES, 131, 2)).astype(np.float32)
    sets = rng.uniform(0.2, 0.8, (2, 4, 131, 2)).astype(np.float32)
    of_frame = (np.arange(FRAMES) >= CUT).astype(np.int64)
    return mel, points, sets, of_frame


def test_one_set_for_every_frame_is_the_plain_plan(model):
    rng = np.random.default_rng(1)
    audio, pose = rng.normal(size=(30, 16, 80)).astype(np.float32), rng.uniform(0, 1, (30, 74, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    plain = predict_sequence(model, audio, pose, refs, stride=2)
    one = predict_sequence(model, audio, pose, refs[None], stride=2, frame_sets=np.zeros(30, np.int64))
    np.testing.assert_array_equal(one, plain)


def test_each_frame_is_planned_from_its_own_persons_references_in_any_chunks(model):
    mel, points, sets, of_frame = _inputs()
    timeline = Timeline(FRAMES, FRAMES, "pingpong")
    fill = np.arange(FRAMES)
    both = MotionPlanner(model, mel, 25.0, timeline, points, fill, PersonReferences(sets, of_frame))
    alone = [MotionPlanner(model, mel, 25.0, timeline, points, fill, sets[k]).content(0, FRAMES) for k in (0, 1)]
    whole = both.content(0, FRAMES)
    t = model.config.window
    # Away from the cut every window covering a frame is its own person's: exactly that person's plan.
    np.testing.assert_allclose(whole[: CUT - t], alone[0][: CUT - t], atol=1e-6)
    np.testing.assert_allclose(whole[CUT + t :], alone[1][CUT + t :], atol=1e-6)
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # the references matter to this head
    for k, person in ((CUT - 1, 0), (CUT, 1)):  # at the cut: nearer its own person's plan than the other's
        own, other = np.abs(whole[k] - alone[person][k]).mean(), np.abs(whole[k] - alone[1 - person][k]).mean()
        assert own < other
    for chunk in (1, 7):
        fresh = MotionPlanner(model, mel, 25.0, timeline, points, fill, PersonReferences(sets, of_frame))
        parts = np.concatenate([fresh.content(s, min(s + chunk, FRAMES)) for s in range(0, FRAMES, chunk)])
        np.testing.assert_allclose(parts, whole, atol=1e-6)
    centres = np.stack([np.full((57, 2), 0.3), np.full((57, 2), 0.6)]).astype(np.float32)
    spread = MotionPlanner(
        model, mel, 25.0, timeline, points, fill, PersonReferences(sets, of_frame), spread=Spread(1.4, centres)
    )
    expected = centres[of_frame] + 1.4 * (whole - centres[of_frame])
    np.testing.assert_allclose(spread.content(0, FRAMES), expected, atol=1e-5)


def test_the_spread_centres_on_each_persons_own_plan(model):
    mel, points, sets, of_frame = _inputs(2)
    references = PersonReferences(sets, of_frame)
    timeline = Timeline(FRAMES, FRAMES, "pingpong")
    content = MotionPlanner(model, mel, 25.0, timeline, points, np.arange(FRAMES), references).content(0, FRAMES)
    from dubber.data.clip_arrays import content_opening

    planned = content_opening(content)
    track = SimpleNamespace(
        frames=FRAMES,
        points=points,
        has_face=np.ones(FRAMES, bool),
        filled_index=lambda: np.arange(FRAMES),
        opening=planned.mean() + 2.0 * (planned - planned.mean()),
    )
    spread = read_own_speech(model, StreamedFeatures(mel, FRAMES / 25.0, ()), track, 25.0, references).spread
    assert spread.centre.shape == (2, 57, 2)
    np.testing.assert_allclose(spread.centre[0], content[:CUT].mean(0), atol=1e-5)
    np.testing.assert_allclose(spread.centre[1], content[CUT:].mean(0), atol=1e-5)


def _track(identities: list[int]) -> VideoTrack:
    """A track whose runs (10 frames each) show the given people (looks made up, so that they are told apart)."""
    rng = np.random.default_rng(3)
    n = 10 * len(identities)
    pool = ReferencePool()
    looks = [rng.standard_normal(384).astype(np.float32) for _ in range(max(identities) + 1)]
    runs = np.repeat(np.arange(0, n, 10), 10)
    for first, who in zip(range(0, n, 10), identities, strict=True):
        pool.identities.assign(first, 10 * looks[who] / np.linalg.norm(looks[who]), frames=10, looks=10)
    points = rng.uniform(0.2, 0.8, (n, 131, 2)).astype(np.float32)
    points[:, :, 0] += np.repeat(np.array(identities, np.float32), 10)[:, None]  # person k's points about x = k
    return VideoTrack(
        times=np.arange(n) / 25.0,
        has_face=np.ones(n, bool),
        transforms=np.zeros((n, 4)),
        points=points,
        opening=rng.uniform(0, 0.4, n).astype(np.float32),
        frontal=np.ones(n, bool),
        yaw=np.zeros(n),
        pool=pool,
        runs=runs,
    )


def test_a_video_of_two_people_gives_each_their_own_references():
    two = _track([0, 1, 1, 0, 1])  # person 1 seen longest: their set comes first
    refs = two.references_by_person(4)
    assert isinstance(refs, PersonReferences) and refs.sets.shape == (2, 4, 131, 2)
    assert refs.of_frame.tolist() == [1] * 10 + [0] * 20 + [1] * 10 + [0] * 10
    assert (refs.sets[0][..., 0] > 1.0).all() and (refs.sets[1][..., 0] < 1.0).all()  # from their own frames
    np.testing.assert_array_equal(refs.main, two.landmark_references(4))
    assert two.person_frames().tolist() == [False] * 10 + [True] * 20 + [False] * 10 + [True] * 10
    one = _track([0, 0, 0])
    plain = one.references_by_person(4)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(plain, one.landmark_references(4))
    assert one.person_frames().all()


def test_the_shots_whose_mouths_follow_the_sound_are_dubbed(model):
    """Person 0 speaks in shot 0; person 1 speaks in shot 70 and listens in shot 150 (their mouth moves, not to
    this sound): shot 150 alone is kept, though person 1 follows the sound over the whole video."""
    from dubber.data.clip_arrays import content_opening
    from dubber.pipeline.speaking_people import Shot, SpeakingPeople, read_speaking, redrawn_frames

    frames = 250  # each shot 2 s or more: enough to tell
    rng = np.random.default_rng(4)
    mel = AudioFeatures(rng.normal(size=(int(frames / 25 * 80) + 20, 80)).astype(np.float32))
    points = rng.uniform(0.2, 0.8, (frames, 131, 2)).astype(np.float32)
    runs = np.repeat([0, 70, 150], [70, 80, 100])
    references = PersonReferences(rng.uniform(0.2, 0.8, (2, 4, 131, 2)).astype(np.float32), (runs > 0).astype(int))
    timeline = Timeline(frames, frames, "pingpong")
    planned = content_opening(
        MotionPlanner(model, mel, 25.0, timeline, points, np.arange(frames), references).content(0, frames)
    )
    tracked = planned.copy()
    tracked[150:] = rng.permutation(planned[150:])
    track = SimpleNamespace(
        frames=frames, points=points, has_face=np.ones(frames, bool), opening=tracked, runs=runs,
        filled_index=lambda: np.arange(frames),
    )  # fmt: skip
    reading = read_speaking(model, StreamedFeatures(mel, frames / 25.0, ()), track, 25.0, references)
    assert reading.matches[0] > 0.99 and reading.matches[1] >= 0.3  # person 1 over the whole video: speaks
    assert [(s.first, s.stop, s.person) for s in reading.shots] == [(0, 70, 0), (70, 150, 1), (150, 250, 1)]
    assert reading.shots[1].match > 0.99 and reading.shots[2].match < 0.3
    assert reading.kept_shots() == [reading.shots[2]] and reading.speaking() == [0, 1]
    np.testing.assert_array_equal(redrawn_frames(track, references, reading), np.arange(frames) < 150)
    held = tracked.copy()  # shot 150 held on one frame: the tracker's jitter alone, in time with the sound
    held[150:] = 0.1 + 1e-4 * (planned[150:] - planned[150:].mean()) / planned[150:].std()
    track.opening = held
    still = read_speaking(model, StreamedFeatures(mel, frames / 25.0, ()), track, 25.0, references)
    assert still.shots[2].match == 0.0 and still.kept_shots() == [still.shots[2]]
    # Without shots read (a person-level reading), or with a shot too short to tell, the person decides.
    assert SpeakingPeople((0.9, 0.1)).speaking() == [0]
    assert SpeakingPeople((0.1, 0.2)).speaking() == [0, 1]  # nobody follows (a voice-over): everyone
    assert SpeakingPeople((0.5, None, 0.1)).speaking() == [0, 1]  # too few frames to tell: dubbed
    short = SpeakingPeople((0.9, 0.1), (Shot(0, 60, 0, 0.9), Shot(60, 80, 1, None), Shot(80, 150, 1, 0.5)))
    assert [short.shot_speaks(s) for s in short.shots] == [True, False, True] and short.speaking() == [0, 1]
    nobody = SpeakingPeople((0.1, 0.2), (Shot(0, 60, 0, 0.1), Shot(60, 120, 1, 0.2)))
    assert nobody.kept_shots() == [] and nobody.speaking() == [0, 1]
