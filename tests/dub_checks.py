"""Checks on dubbed videos shared by the end-to-end tests: decoded frames, the pixels a dub may not touch."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dubber.face import FaceAligner, FaceTracker
from dubber.face.aligner import Similarity, apply_affine, invert_affine
from dubber.media import VideoReader
from dubber.pipeline.analysis import analyse_video
from dubber.render.face_mask import LOWER_FACE_POLYGON


def frames_of(path: Path) -> list[np.ndarray]:
    return [f.image for f in VideoReader(path)]


def outside_mask(video: Path, size: int, dilate: int) -> list[np.ndarray | None]:
    """Per frame, True where the pixel lies outside the (dilated) lower-face polygon; None without a face."""
    with FaceTracker() as tracker:
        track = analyse_video(VideoReader(video), tracker, FaceAligner(size))
    out = []
    for has, tf in zip(track.has_face, track.transforms, strict=True):
        if not has:
            out.append(None)
            continue
        poly = apply_affine(invert_affine(Similarity(*tf).to_matrix(1)), LOWER_FACE_POLYGON)
        inside = np.zeros((size, size), np.uint8)
        cv2.fillPoly(inside, [np.round(poly).astype(np.int32)], 1)
        out.append(cv2.dilate(inside, np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)) == 0)
    return out


def no_partials(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".partial")]
