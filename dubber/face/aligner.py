"""One alignment rule for prep, training and inference: a similarity transform from stable upper-face points to a
canonical S x S crop, its inverse, and landmarks in crop coordinates in [0, 1].

The canonical positions are a mean frontal face (``canonical_face.npy``, made by ``scripts/make_face_template.py``
from real footage) framed so the whole face, an open jaw included, fits the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from dubber.face.landmarks import ALIGN_INDICES
from dubber.face.warp import warp_to_square

CROP_SIZES = (128, 256)


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """(478, 2) float32: the mean face in unit crop coordinates (x right, y down, both in [0, 1])."""
    with resources.files("dubber.face").joinpath("canonical_face.npy").open("rb") as f:
        return np.load(f).astype(np.float32)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` onto ``dst``; 2x3 matrix.

    Closed form (Umeyama 1991, without reflection) on (N, 2) point sets.
    """
    src = np.asarray(src, dtype=np.float64)[:, :2]
    dst = np.asarray(dst, dtype=np.float64)[:, :2]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / max(var_s, 1e-12)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    out = pts[..., :2] @ m[:, :2].T + m[:, 2]
    return out.astype(np.float32)


@dataclass(frozen=True)
class Similarity:
    """Frame -> unit-crop similarity as (centre of the crop in the frame, frame pixels per crop unit, angle).

    This parameterisation is what the tracker smooths: each number has a plain meaning and moves smoothly. On an
    anamorphic frame (``aspect``: a pixel's width over its height, not 1) the crop is square on screen, not in the
    stored pixels: ``scale`` and ``angle`` are measured on screen, in pixel heights, and the matrices map the
    stored pixels.
    """

    cx: float
    cy: float
    scale: float
    angle: float  # radians, counter-clockwise rotation of the crop's x axis in the frame
    aspect: float = 1.0

    @classmethod
    def from_matrix(cls, m: np.ndarray, aspect: float = 1.0) -> Similarity:
        """From a frame -> unit-crop 2x3 matrix (a similarity on screen)."""
        inv = invert_affine(m)  # unit crop -> frame
        a, b = inv[0, 0] * aspect, inv[1, 0]
        centre = inv[:, :2] @ np.array([0.5, 0.5]) + inv[:, 2]
        return cls(float(centre[0]), float(centre[1]), float(np.hypot(a, b)), float(np.arctan2(b, a)), float(aspect))

    def to_matrix(self, size: int = 1) -> np.ndarray:
        """Frame -> crop matrix for an S x S crop (``size=1``: unit crop coordinates)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        inv = np.array([[c * self.scale, -s * self.scale, 0.0], [s * self.scale, c * self.scale, 0.0]])
        if self.aspect != 1.0:
            inv[0, :2] /= self.aspect  # on screen -> stored pixels
        inv[:, 2] = np.array([self.cx, self.cy]) - inv[:, :2] @ np.array([0.5, 0.5])
        m = invert_affine(inv)
        return m * size

    def in_region(self, x0: int, y0: int) -> Similarity:
        """The same crop for the pixel coordinates of a region of the frame whose top-left pixel is (x0, y0)."""
        return Similarity(self.cx - x0, self.cy - y0, self.scale, self.angle, self.aspect)

    def as_vector(self) -> np.ndarray:
        """(cx, cy, scale, angle); the aspect is the video's (``VideoTrack.aspect``)."""
        return np.array([self.cx, self.cy, self.scale, self.angle])

    def corners(self) -> np.ndarray:
        """The crop's four corners in frame pixels (clockwise from top-left), for drawing."""
        inv = invert_affine(self.to_matrix(1))
        return apply_affine(inv, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64))


class FaceAligner:
    """Crop a frame to the canonical S x S face and paste crops back."""

    def __init__(self, size: int = 128) -> None:
        if size <= 0:
            raise ValueError(f"size={size} must be positive")
        self.size = size
        self.template = canonical_face()[list(ALIGN_INDICES)]

    def estimate(self, points: np.ndarray, aspect: float = 1.0) -> Similarity:
        """The frame -> crop similarity for one face's 478 landmarks (pixels), fitted on screen: a pixel of an
        anamorphic frame is ``aspect`` times as wide as it is high."""
        found = np.asarray(points, np.float64)[list(ALIGN_INDICES), :2]
        m = fit_similarity(found * np.array([aspect, 1.0]), self.template)  # screen -> crop
        m[:, 0] *= aspect  # stored pixels -> crop
        return Similarity.from_matrix(m, aspect)

    def matrix(self, transform: Similarity) -> np.ndarray:
        return transform.to_matrix(self.size)

    def crop(self, frame: np.ndarray, transform: Similarity) -> np.ndarray:
        """The S x S RGB crop (area-filtered when it shrinks the face, so large faces do not alias)."""
        return warp_to_square(frame, self.matrix(transform), self.size)

    def detail_crop(self, frame: np.ndarray, transform: Similarity, most: int) -> np.ndarray | None:
        """The same square at the face's own resolution, at most ``most`` pixels a side: None when the face is
        not larger than the crop by a fifth (the S x S crop holds its detail already)."""
        side = int(np.ceil(transform.scale))
        if side <= 1.2 * self.size:
            return None
        side = min(side, most)
        return warp_to_square(frame, transform.to_matrix(side), side)

    def uncrop(
        self, crop: np.ndarray, transform: Similarity, frame_shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Warp a crop back into frame geometry: (image, coverage) with coverage 1 where the crop lands."""
        h, w = frame_shape[:2]
        m = self.matrix(transform)
        image = cv2.warpAffine(
            crop, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
        ones = np.ones(crop.shape[:2], dtype=np.float32)
        coverage = cv2.warpAffine(ones, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        return image, coverage

    def to_crop(self, points: np.ndarray, transform: Similarity) -> np.ndarray:
        """Landmarks (pixels) -> unit crop coordinates ([0, 1] inside the crop)."""
        return apply_affine(transform.to_matrix(1), points)

    def to_frame(self, points_unit: np.ndarray, transform: Similarity) -> np.ndarray:
        """Unit crop coordinates -> frame pixels."""
        return apply_affine(invert_affine(transform.to_matrix(1)), points_unit)
