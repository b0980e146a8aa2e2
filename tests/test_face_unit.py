"""Face geometry, smoothing, alignment and the tracker's logic, with a tiny deterministic fake backend."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dubber.face import (
    ALIGN_INDICES,
    ALL_INDICES,
    CONTENT_INDICES,
    POSE_INDICES,
    FaceAligner,
    FaceTracker,
    Similarity,
    TrackerOptions,
    canonical_face,
    fit_similarity,
    mouth_opening,
)
from dubber.face.smoothing import OneEuroFilter
from dubber.media.video_reader import Frame
from tests.fake_faces import SquareFaces


def test_index_sets():
    assert len(POSE_INDICES) == 74 and len(CONTENT_INDICES) == 57 and len(ALL_INDICES) == 131
    assert len(set(ALL_INDICES)) == 131 and max(ALL_INDICES) < 478
    assert set(ALIGN_INDICES).isdisjoint(CONTENT_INDICES)  # the crop must not follow the jaw


def test_canonical_face_fits_the_crop():
    face = canonical_face()
    assert face.shape == (478, 2)
    assert face.min() > 0.05 and face.max() < 0.95
    assert face[152, 1] < 0.85  # closed-mouth chin leaves room below for an open jaw
    assert mouth_opening(np.concatenate([face, np.zeros((478, 1))], 1)) < 0.15


def test_fit_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (20, 2))
    a, s, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = s * src @ rot.T + t
    m = fit_similarity(src, dst)
    assert np.allclose(m[:, :2], s * rot, atol=1e-9) and np.allclose(m[:, 2], t, atol=1e-7)


def test_similarity_round_trip():
    tf = Similarity(cx=320.0, cy=200.0, scale=150.0, angle=0.2)
    back = Similarity.from_matrix(tf.to_matrix(1))
    assert np.allclose(back.as_vector(), tf.as_vector())
    assert np.allclose(tf.to_matrix(128), 128 * tf.to_matrix(1))


def test_one_euro_smooths_noise_and_follows_fast_motion():
    rng = np.random.default_rng(0)
    t = np.arange(200) / 25.0
    noisy = 1.0 + 0.01 * rng.standard_normal(200)
    f = OneEuroFilter(min_cutoff=1.0, beta=5.0)
    out = np.array([f(np.array([x]), ti)[0] for x, ti in zip(noisy, t, strict=False)])
    assert np.std(np.diff(out[20:])) < 0.3 * np.std(np.diff(noisy[20:]))
    step = np.where(t < 4, 0.0, 1.0)
    f = OneEuroFilter(min_cutoff=1.0, beta=5.0)
    out = np.array([f(np.array([x]), ti)[0] for x, ti in zip(step, t, strict=False)])
    assert out[np.searchsorted(t, 4.0) + 3] > 0.8  # within 3 frames of a jump


def _textured(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 9.0) + 40 * np.sin((x + y) / 13.0)
    return np.stack([img, 255 - img, img * 0.5 + 60], -1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [128, 256])
def test_aligner_round_trip_on_an_upscaled_face(size):
    frame = _textured(240, 320)
    tf = Similarity(cx=160.0, cy=120.0, scale=0.4 * size, angle=0.1)  # crop upsamples: information kept
    al = FaceAligner(size)
    crop = al.crop(frame, tf)
    assert crop.shape == (size, size, 3)
    back, cov = al.uncrop(crop, tf, frame.shape)
    inner = cov > 0.999
    inner = cv2.erode(inner.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    mse = np.mean((back[inner].astype(float) - frame[inner]) ** 2)
    assert 10 * np.log10(255**2 / mse) > 40


def test_aligner_landmark_coordinates():
    al = FaceAligner(128)
    pts = np.random.default_rng(1).uniform(50, 150, (478, 3)).astype(np.float32)
    tf = al.estimate(pts)
    unit = al.to_crop(pts, tf)
    assert np.allclose(al.to_frame(unit, tf), pts[:, :2], atol=1e-3)
    # A face placed exactly at the template lands on the template.
    templ = canonical_face()
    frame_pts = np.concatenate([templ * 200 + 40, np.zeros((478, 1))], 1)
    assert np.allclose(
        al.to_crop(frame_pts, al.estimate(frame_pts))[list(ALIGN_INDICES)], templ[list(ALIGN_INDICES)], atol=1e-4
    )


# -- tracker logic with a fake backend --------------------------------------------------------------------------
def _scene(squares: list[tuple[int, int, int]], bg: int = 40, size=(240, 320)) -> np.ndarray:
    img = np.full((*size, 3), bg, np.uint8)
    for x, y, s in squares:
        img[y : y + s, x : x + s] = 255
    return img


def _frames(images):
    return [Frame(index=i, time=i / 25, image=im, source_index=i) for i, im in enumerate(images)]


def test_tracker_follows_the_largest_face_or_the_chosen_one():
    images = [_scene([(20, 40, 50), (200, 60, 80)])] * 5
    big = [s.face for s in FaceTracker(SquareFaces()).track(_frames(images))]
    assert all(f is not None and abs(f.box.center[0] - 240) < 3 for f in big)
    small = [s.face for s in FaceTracker(SquareFaces(), TrackerOptions(face_index=1)).track(_frames(images))]
    assert all(f is not None and abs(f.box.center[0] - 45) < 3 for f in small)
    none = [s.face for s in FaceTracker(SquareFaces(), TrackerOptions(face_index=2)).track(_frames(images))]
    assert none == [None] * 5
    # By side: of the faces near the largest's size (a small one in the corner does not count).
    images = [_scene([(20, 40, 50), (200, 60, 80), (2, 2, 12)])] * 5
    for side, x in (("left", 45), ("right", 240)):
        steps = FaceTracker(SquareFaces(), TrackerOptions(face_side=side)).track(_frames(images))
        assert all(s.face is not None and abs(s.face.box.center[0] - x) < 3 for s in steps)


def test_tracker_reacquires_after_a_loss_and_a_scene_cut():
    images = [_scene([(40, 40, 60)])] * 4 + [_scene([])] * 3 + [_scene([(180, 100, 70)])] * 3
    images += [_scene([(60, 20, 90)], bg=200)] * 3  # a cut: new background, face elsewhere
    steps = list(FaceTracker(SquareFaces()).track(_frames(images)))
    faces = [s.face is not None for s in steps]
    assert faces == [True] * 4 + [False] * 3 + [True] * 6
    assert steps[7].reacquired and abs(steps[7].face.box.center[0] - 215) < 3
    assert steps[10].scene_cut and steps[10].reacquired and abs(steps[10].face.box.center[0] - 105) < 3
    assert not steps[11].scene_cut and not steps[11].reacquired


def test_a_face_lost_in_a_shot_of_two_is_found_where_it_was_not_swapped_for_the_other():
    """Two faces in one shot, the larger followed; it is covered for 3 frames (only the other face shows), then
    comes back a little smaller than the other: the tracker waits for it and takes it back, where choosing by size
    would have jumped to the other person and stayed there."""
    both = [_scene([(20, 40, 80), (200, 60, 84)])] * 4
    other_alone = [_scene([(20, 40, 80)])] * 3
    back_smaller = [_scene([(20, 40, 80), (204, 64, 76)])] * 4
    steps = list(FaceTracker(SquareFaces()).track(_frames(both + other_alone + back_smaller)))
    xs = [None if s.face is None else round(s.face.box.center[0]) for s in steps]
    assert xs == [242] * 4 + [None] * 3 + [242] * 4
    # By size alone (no memory): the other face from the loss on.
    blind = FaceTracker(SquareFaces(), TrackerOptions(refind_seconds=0.0)).track(
        _frames(both + other_alone + back_smaller)
    )
    assert [None if s.face is None else round(s.face.box.center[0]) for s in blind] == [242] * 4 + [60] * 7
    # A tracker reset for another video forgets where the face was: the next video's face is chosen by size.
    tracker = FaceTracker(SquareFaces())
    list(tracker.track(_frames(both)))
    tracker.reset()
    steps = list(tracker.track(_frames([_scene([(20, 40, 80), (120, 140, 40)])] * 2)))
    assert [round(s.face.box.center[0]) for s in steps] == [60, 60]
    # Gone for longer than the memory: chosen by size again.
    late = both + [_scene([(20, 40, 80)])] * 60 + back_smaller
    steps = list(FaceTracker(SquareFaces()).track(_frames(late)))
    assert steps[4].face is None and steps[4 + 50].face is not None and round(steps[4 + 50].face.box.center[0]) == 60


def test_tracker_smooths_the_crop_transform():
    images = [_scene([(100, 60, 100)])] * 60
    steps = list(FaceTracker(SquareFaces(jitter=1.0)).track(_frames(images)))
    al = FaceAligner(1)
    raw = np.array([al.estimate(s.face.raw_points).as_vector()[:2] for s in steps])
    smooth = np.array([s.face.transform.as_vector()[:2] for s in steps])
    assert np.abs(np.diff(smooth[10:], axis=0)).mean() < 0.3 * np.abs(np.diff(raw[10:], axis=0)).mean()


def test_a_frame_prepared_ahead_tracks_as_the_frame_itself():
    """``prepare`` runs in the decoding thread a few frames ahead of ``step``: its region of interest may be stale by
    then (the face moved, was lost, the scene cut); ``step`` then cuts the frame again, so the track is the same."""
    images = [_scene([(40, 40, 60)])] * 8 + [_scene([(40 + 8 * i, 40, 60)]) for i in range(8)]  # still, drifting
    images += [_scene([])] * 3 + [_scene([(180, 100, 70)])] * 4 + [_scene([(60, 20, 90)], bg=200)] * 4  # lost, cut
    frames = _frames(images)
    plain = list(FaceTracker(SquareFaces(jitter=1.0)).track(frames))

    backend = SquareFaces(jitter=1.0)
    seen: list[np.ndarray] = []
    landmarks = backend.landmarks
    backend.landmarks = lambda image: seen.append(image) or landmarks(image)
    tracker, ahead = FaceTracker(backend), 3
    made = []  # every prepared frame, kept alive so that their cut-outs' ids stay theirs
    for i in range(ahead):
        made.append(tracker.prepare(frames[i]))
    steps = []
    for i, frame in enumerate(frames):
        if i + ahead < len(frames):
            made.append(tracker.prepare(frames[i + ahead]))  # made with the region frame i - 1 left
        steps.append(tracker.step(frame, made[i]))

    for a, b in zip(plain, steps, strict=True):
        assert (a.scene_cut, a.reacquired, a.face is None) == (b.scene_cut, b.reacquired, b.face is None)
        if a.face is not None:
            np.testing.assert_array_equal(a.face.points, b.face.points)
            assert a.face.transform == b.face.transform
    cut_ahead = {id(p.roi_image) for p in made if p.roi_image is not None}
    used = sum(id(image) in cut_ahead for image in seen)
    # Most frames were tracked on the cut-out made ahead; those whose region had moved, been lost or cut, again.
    assert 0 < used < len(seen)


def test_landmarks_read_from_the_wire_are_the_points_read_one_by_one():
    landmark_pb2 = pytest.importorskip("mediapipe.framework.formats.landmark_pb2")
    from dubber.face.mediapipe_backend import landmark_array

    points = np.random.default_rng(0).normal(0.5, 0.3, (478, 3)).astype(np.float32)
    points[5] = 0.0  # set to zero, still on the wire (proto2)
    listed = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in points:
        listed.landmark.add(x=x, y=y, z=z)
    got = landmark_array(listed)
    assert got.dtype == np.float32 and got.flags.writeable
    np.testing.assert_array_equal(got, points)
    listed.landmark[7].visibility = 0.9  # a field more: read point by point
    np.testing.assert_array_equal(landmark_array(listed), points)
    del listed.landmark[7:]
    listed.landmark[3].ClearField("z")  # a field fewer: point by point too (an unset z reads 0)
    expected = points[:7].copy()
    expected[3, 2] = 0.0
    np.testing.assert_array_equal(landmark_array(listed), expected)
    assert landmark_array(landmark_pb2.NormalizedLandmarkList()).shape == (0, 3)


_IMPORT_CHECK = """
import sys
if {pyplot_first}:
    import matplotlib.pyplot
from dubber.face.mediapipe_backend import _import_mediapipe
mp = _import_mediapipe()
print(int("matplotlib" in sys.modules), int("matplotlib.pyplot" in sys.modules))
plt = mp.solutions.drawing_utils.plt
figure = plt.figure  # the one use MediaPipe makes of it: the real pyplot, imported now
import matplotlib.pyplot
print(int(figure is matplotlib.pyplot.figure), int(plt is matplotlib.pyplot), int(hasattr(matplotlib, "pyplot")))
"""


@pytest.mark.parametrize("pyplot_first", [False, True])
def test_mediapipe_is_imported_without_pyplot_which_imports_itself_when_used(pyplot_first):
    """Importing MediaPipe leaves matplotlib unimported (0.23 s) unless it already was; its drawing module's pyplot
    is then the real one when used, and any later import of matplotlib is the real package."""
    import subprocess
    import sys

    pytest.importorskip("mediapipe")
    code = _IMPORT_CHECK.format(pyplot_first=pyplot_first)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    imported, used = (line.split() for line in out.stdout.strip().splitlines()[-2:])
    assert imported == (["1", "1"] if pyplot_first else ["0", "0"])
    # A stand-in forwards to the real pyplot; the real package and module are what an import gives afterwards.
    assert used == (["1", "1", "1"] if pyplot_first else ["1", "0", "1"])
