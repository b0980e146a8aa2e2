"""The renderer's crop moved down the face so that the upper lip lies where the paste is full
(dubber/pipeline/render_shift.py): the shift read from the tracked lips; the crop, its points and stored crops moved
alike."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dubber.face.aligner import FaceAligner, Similarity, apply_affine
from dubber.face.landmarks import OUTER_LIP_POINTS, OUTER_LIPS
from dubber.face.warp import warp_to_square
from dubber.pipeline.compositor import Compositor, ReferenceDetail
from dubber.pipeline.render_shift import (
    LIP_TOP,
    MOST_SHIFT,
    mouth_shift,
    shifted_crops,
    shifted_points,
    shifted_transform,
    unshifted_reads,
)
from dubber.render.hint_warp import thin_plate_read

_OUTER = OUTER_LIP_POINTS


def _points_with_lip_top(tops: list[float]) -> np.ndarray:
    rng = np.random.default_rng(0)
    points = rng.uniform(0.2, 0.8, (len(tops), 131, 2)).astype(np.float32)
    for k, top in enumerate(tops):
        points[k, _OUTER, 1] = rng.uniform(top, top + 0.1, len(OUTER_LIPS))
        points[k, _OUTER.start + 4, 1] = top  # the upper lip's highest point
    return points


def test_the_shift_brings_the_typical_upper_lip_down_to_lip_top_in_whole_pixels():
    points = _points_with_lip_top([0.52, 0.53, 0.53, 0.54, 0.70])
    points[1] = np.nan  # a frame without a face does not count
    dy = mouth_shift(points, 128)
    assert dy * 128 == round(dy * 128)
    assert abs(dy - (LIP_TOP - 0.535)) <= 0.5 / 128
    assert mouth_shift(_points_with_lip_top([0.58, 0.60]), 128) == 0.0  # low enough already: GRID's lips
    assert mouth_shift(_points_with_lip_top([0.30]), 128) <= MOST_SHIFT + 0.5 / 128
    assert mouth_shift(np.full((3, 131, 2), np.nan, np.float32), 128) == 0.0


def test_the_shifted_crop_shows_the_face_lower_by_the_shift():
    tf = Similarity(cx=300.0, cy=220.0, scale=140.0, angle=0.3)
    dy = 5 / 128
    frame_points = np.array([[280.0, 250.0], [330.0, 190.0]])
    before = apply_affine(tf.to_matrix(1), frame_points)
    after = apply_affine(shifted_transform(tf, dy).to_matrix(1), frame_points)
    np.testing.assert_allclose(after, shifted_points(before, dy), atol=1e-5)
    assert shifted_transform(tf, 0.0) is tf
    t = torch.from_numpy(before)
    assert torch.allclose(shifted_points(t, dy), torch.from_numpy(after), atol=1e-5)


def test_a_stored_crop_moved_by_the_shift_is_the_crop_of_the_shifted_transform():
    rng = np.random.default_rng(1)
    frame = (rng.random((48, 64, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)  # smooth enough
    tf = Similarity(cx=260.0, cy=200.0, scale=128.0, angle=0.0)  # one frame pixel per crop pixel
    rows = 6
    stored = warp_to_square(frame, tf.to_matrix(128), 128)
    moved = shifted_crops(stored[None], rows / 128)[0]
    fresh = Compositor(128).crop(frame, shifted_transform(tf, rows / 128))
    np.testing.assert_array_equal(moved[rows:], fresh[rows:])
    np.testing.assert_array_equal(moved[:rows], np.repeat(stored[:1], rows, axis=0))
    unmoved = stored[None]
    assert shifted_crops(unmoved, 0.0) is unmoved  # no shift: the stored crops as they are, not a copy


def test_a_reference_detail_read_in_the_moved_crop_lands_on_the_frame_it_came_from():
    """The hint warp's read maps are in the moved crop; the stored detail crops hold the tracked crop's square. An
    unmoved hint (its points the target's) must carry the detail back onto the very frame pixels it was cut from."""
    rng = np.random.default_rng(2)
    frame = cv2.GaussianBlur((rng.random((300, 400, 3)) * 255).astype(np.uint8), (0, 0), 3.0)
    tf = Similarity(cx=200.0, cy=150.0, scale=256.0, angle=0.1)  # 2 frame pixels a crop pixel
    detail = FaceAligner(128).detail_crop(frame, tf, 512)
    assert detail is not None
    dy = 6 / 128
    points = torch.from_numpy(shifted_points(rng.uniform(0.3, 0.7, (1, 131, 2)).astype(np.float32), dy))
    read = thin_plate_read(points, points, 64)[0].numpy()  # the hint on the target's own landmarks
    moved = shifted_transform(tf, dy)
    x0, y0, size = 140, 110, (120, 90)  # a patch of the lower face
    carried = ReferenceDetail(detail, unshifted_reads(read, dy)).in_region(moved, x0, y0, size)
    truth = frame[y0 : y0 + size[1], x0 : x0 + size[0]].astype(np.float32)
    assert np.abs(carried - truth).mean() < 1.5
    wrong = ReferenceDetail(detail, read).in_region(moved, x0, y0, size)  # the read taken as the tracked crop's
    assert np.abs(wrong - truth).mean() > 3 * np.abs(carried - truth).mean()
