"""Drawing landmarks and the crop box on frames, for previews and contact sheets."""

from __future__ import annotations

import cv2
import numpy as np

from dubber.face.landmarks import JAW, LIP_INDICES, POSE_INDICES
from dubber.face.tracker import TrackedFace

POSE_COLOUR = (60, 220, 60)
LIP_COLOUR = (255, 60, 60)
JAW_COLOUR = (255, 200, 0)
BOX_COLOUR = (0, 200, 255)


def _dots(image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: int) -> None:
    for x, y in np.round(points[:, :2]).astype(int):
        cv2.circle(image, (int(x), int(y)), radius, colour, -1, lineType=cv2.LINE_AA)


def draw_face(image: np.ndarray, face: TrackedFace | None) -> np.ndarray:
    """A copy of ``image`` with pose (green), lip (red) and jaw (yellow) landmarks and the crop box (cyan)."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(1, round(min(h, w) / 360))
    if face is None:
        cv2.putText(
            out,
            "no face",
            (10 * scale, 30 * scale),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8 * scale,
            (255, 0, 0),
            2 * scale,
            cv2.LINE_AA,
        )
        return out
    radius = max(1, round(face.size / 150))
    box = np.round(face.transform.corners()).astype(np.int32)
    cv2.polylines(out, [box.reshape(-1, 1, 2)], True, BOX_COLOUR, scale, cv2.LINE_AA)
    _dots(out, face.points[list(POSE_INDICES)], POSE_COLOUR, radius)
    _dots(out, face.points[list(JAW)], JAW_COLOUR, radius)
    _dots(out, face.points[list(LIP_INDICES)], LIP_COLOUR, radius)
    return out
