"""Anamorphic video (pixels wider or narrower than high): the face is tracked, cropped and pasted square on screen,
so the models see the face they would see in the same video stored with square pixels."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
from media_factory import face_frame, make_face_video, make_video, psnr

from dubber.evaluation.dub_metrics import face_regions, frame_points, screen_points
from dubber.evaluation.split_eval import cut_halves
from dubber.face import FaceAligner, FaceTracker
from dubber.face.aligner import Similarity, apply_affine, canonical_face, invert_affine
from dubber.face.backend import FaceBox
from dubber.face.tracker import TrackedFace, TrackerOptions
from dubber.media import VideoReader, probe_media
from dubber.pipeline.face_pass import track_video
from dubber.pipeline.render_shift import shifted_transform

PAL_WIDE = 64 / 45  # a 16:9 PAL frame stored 720 x 576


def _squeezed(points: np.ndarray, aspect: float) -> np.ndarray:
    return points * np.array([1 / aspect, 1.0, 1.0])[: points.shape[1]]


def test_the_crop_of_a_squeezed_face_is_the_crop_of_the_face_on_screen():
    rng = np.random.default_rng(0)
    face = canonical_face()[:, :2] * 180 + np.array([300.0, 200.0])  # a face on screen, in pixel heights
    turn = np.radians(12.0)
    rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    face = (face - face.mean(0)) @ rot.T + face.mean(0) + rng.normal(0, 0.3, face.shape)
    aligner = FaceAligner(128)
    on_screen = aligner.estimate(face)
    stored = aligner.estimate(_squeezed(face, PAL_WIDE), PAL_WIDE)
    assert stored.aspect == PAL_WIDE and on_screen.aspect == 1.0
    assert stored.scale == pytest.approx(on_screen.scale, rel=1e-6)
    assert stored.angle == pytest.approx(on_screen.angle, abs=1e-6)
    # every point lands where it lands in the square-pixel frame, in the crop and back
    np.testing.assert_allclose(
        aligner.to_crop(_squeezed(face, PAL_WIDE), stored), aligner.to_crop(face, on_screen), atol=1e-5
    )
    unit = aligner.to_crop(face, on_screen)
    np.testing.assert_allclose(aligner.to_frame(unit, stored), _squeezed(face, PAL_WIDE), atol=1e-3)
    again = Similarity.from_matrix(stored.to_matrix(1), PAL_WIDE)
    np.testing.assert_allclose(again.as_vector(), stored.as_vector(), atol=1e-9)
    assert stored.in_region(10, 20).aspect == PAL_WIDE
    # the renderer's crop moved down the face moves down it on screen too
    dy = 0.05
    for t in (on_screen, stored):
        shifted = shifted_transform(t, dy)
        assert shifted.aspect == t.aspect
        old, new = (invert_affine(x.to_matrix(1)) for x in (t, shifted))
        moved = apply_affine(new, [[0.5, 0.5]]) - apply_affine(old, [[0.5, 0.5]])
        moved = moved * np.array([t.aspect, 1.0])  # on screen
        down = apply_affine(old, [[0.5, 0.6]]) - apply_affine(old, [[0.5, 0.5]])
        down = down * np.array([t.aspect, 1.0]) / 0.1
        np.testing.assert_allclose(moved, -dy * down, atol=1e-4)


def test_a_face_is_as_large_as_it_is_shown():
    box = FaceBox(10.0, 20.0, 60.0, 80.0, 1.0)  # 50 stored pixels wide, 60 high
    for aspect, size in ((1.0, 60.0), (1.5, 75.0)):
        tf = Similarity(35.0, 50.0, 100.0, 0.0, aspect)
        face = TrackedFace(np.zeros((478, 3), np.float32), np.zeros((478, 3), np.float32), tf, (0.0, 0.0, 0.0), box)
        assert face.size == size


def test_a_tracked_anamorphic_face_gives_the_square_pixel_crop(tmp_path):
    side, frames = 256, 3
    stored_width = round(side / PAL_WIDE) // 2 * 2
    square = make_video(tmp_path / "square.mp4", frames=frames, width=side, height=side, frame_fn=face_frame)

    def squeezed(i: int, w: int, h: int) -> np.ndarray:
        return cv2.resize(face_frame(i, side, side), (w, h), interpolation=cv2.INTER_AREA)

    pal = make_video(
        tmp_path / "pal.mp4", frames=frames, width=stored_width, height=side, frame_fn=squeezed,
        sample_aspect=Fraction(64, 45),
    )  # fmt: skip
    reader = VideoReader(pal)
    aspect = float(reader.info.sample_aspect)
    aligner = FaceAligner(128)
    crops, sizes = {}, {}
    for name, path, options in (
        ("square", square, TrackerOptions()),
        ("anamorphic", pal, TrackerOptions(pixel_aspect=aspect)),
        ("stored", pal, TrackerOptions()),  # the crop made on the stored pixels, as before
    ):
        with FaceTracker(options=options) as tracker:
            faces = [(s.frame.image, s.face) for s in tracker.track(VideoReader(path))]
        assert all(face is not None for _, face in faces)
        crops[name] = [aligner.crop(image, face.transform) for image, face in faces]
        sizes[name] = np.median([face.box.width * face.transform.aspect for _, face in faces])  # width on screen
    on_screen = np.mean([psnr(a, b) for a, b in zip(crops["anamorphic"], crops["square"], strict=True)])
    stored = np.mean([psnr(a, b) for a, b in zip(crops["stored"], crops["square"], strict=True)])
    assert on_screen > 30 and stored < 20, (on_screen, stored)  # the square crop, not the squeezed one
    assert sizes["anamorphic"] == pytest.approx(sizes["square"], rel=0.03)


def test_the_scores_measure_a_squeezed_face_on_screen():
    face = canonical_face()[:, :2] * 180 + np.array([300.0, 200.0])  # on screen, in pixel heights
    aligner = FaceAligner(128)
    square, stored = aligner.estimate(face), aligner.estimate(_squeezed(face, PAL_WIDE), PAL_WIDE)
    unit = aligner.to_crop(face, square)[None]
    at = {name: tf.as_vector()[None] for name, tf in (("square", square), ("stored", stored))}
    np.testing.assert_allclose(frame_points(unit, at["stored"], PAL_WIDE)[0], _squeezed(face, PAL_WIDE), atol=1e-3)
    np.testing.assert_allclose(screen_points(unit, at["stored"], PAL_WIDE)[0], face, atol=1e-3)
    np.testing.assert_array_equal(screen_points(unit, at["square"]), frame_points(unit, at["square"]))
    # the lower face and the seam's band: the square frame's regions, squeezed
    height, width = 480, 640
    regions = face_regions(at["square"][0], (height, width))
    squeezed_width = round(width / PAL_WIDE)

    def overlap(wanted: np.ndarray, got: np.ndarray) -> float:
        stretched = cv2.resize(got.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        return (stretched & wanted).sum() / (stretched | wanted).sum()

    squeezed = face_regions(at["stored"][0], (height, squeezed_width), aspect=PAL_WIDE)
    for wanted, got in zip(regions, squeezed, strict=True):
        assert overlap(wanted, got) > 0.9, overlap(wanted, got)
    as_if_square = face_regions(at["stored"][0], (height, squeezed_width))  # what the scores used before
    assert overlap(regions[0], as_if_square[0]) < 0.8


def test_the_split_protocol_cuts_and_tracks_an_anamorphic_clip_as_the_dub_does(tmp_path):
    clip = make_face_video(tmp_path / "pal.mp4", frames=8, size=256, audio_rate=16000, sample_aspect=Fraction(64, 45))
    first, _ = cut_halves(clip, tmp_path, 4)
    assert probe_media(first).video.sample_aspect == Fraction(64, 45)
    track = track_video(first, 128)
    assert track.aspect == pytest.approx(PAL_WIDE) and track.has_face.all()
