"""A fake face backend for fast, deterministic tests: white squares are faces."""

from __future__ import annotations

import cv2
import numpy as np

from dubber.face.aligner import canonical_face
from dubber.face.backend import FaceBackend, FaceBox


class SquareFaces(FaceBackend):
    """'Faces' are pure white squares; landmarks are the canonical face stretched over the one nearest the centre."""

    name = "squares"

    def __init__(self, jitter: float = 0.0) -> None:
        self.rng = np.random.default_rng(0)
        self.jitter = jitter
        self.resets = 0

    def _squares(self, image: np.ndarray) -> list[FaceBox]:
        mask = (image.min(axis=2) == 255).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        return [FaceBox(x, y, x + w, y + h, 1.0) for x, y, w, h, area in stats[1:] if area > 30]

    def detect(self, image):
        return self._squares(image)

    def landmarks(self, image):
        boxes = self._squares(image)
        if not boxes:
            return None
        h, w = image.shape[:2]
        b = min(boxes, key=lambda b: np.hypot(b.center[0] - w / 2, b.center[1] - h / 2))
        pts = canonical_face() * [b.width, b.height] + [b.x0, b.y0]
        pts = pts + self.jitter * self.rng.standard_normal(pts.shape) * b.width / 100
        return np.concatenate([pts, np.zeros((478, 1))], 1).astype(np.float32)

    def reset(self):
        self.resets += 1
