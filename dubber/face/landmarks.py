"""MediaPipe FaceMesh index sets (after IP_LAP's 131 points: docs/ARCHITECTURE.md) and small geometry helpers."""

from __future__ import annotations

import numpy as np

NUM_MESH_POINTS = 478  # FaceMesh with refine_landmarks (468 + 10 iris points)

FACE_OVAL_SIDES = (162, 127, 234, 93, 323, 454, 356, 389)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (336, 296, 334, 293, 300, 276, 283, 282, 295, 285)
NOSE = (168, 6, 197, 195, 5, 48, 115, 220, 45, 4, 275, 440, 344, 278)
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382)

JAW = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)

# Pose: taken from the video (74 points). Content: predicted from audio (57 points).
POSE_INDICES: tuple[int, ...] = FACE_OVAL_SIDES + RIGHT_BROW + LEFT_BROW + NOSE + RIGHT_EYE + LEFT_EYE
LIP_INDICES: tuple[int, ...] = OUTER_LIPS + INNER_LIPS
CONTENT_INDICES: tuple[int, ...] = JAW + LIP_INDICES
ALL_INDICES: tuple[int, ...] = POSE_INDICES + CONTENT_INDICES  # the 131 model points, pose first
N_POSE = len(POSE_INDICES)  # 74: the model points' first ones
N_CONTENT = len(CONTENT_INDICES)  # 57: jaw (17) then outer and inner lips (40)
N_POINTS = len(ALL_INDICES)  # 131
# The outer lip contour among the model points (after the pose points and the jaw).
OUTER_LIP_POINTS = slice(N_POSE + len(JAW), N_POSE + len(JAW) + len(OUTER_LIPS))

# Points that do not move when a person speaks or changes expression: the aligner fits on these alone, so the
# crop follows the skull and not the jaw. Eye corners, nose bridge and tip, and the face sides at eye height.
ALIGN_INDICES: tuple[int, ...] = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 127, 234, 356, 454)

# Named single points used for measurements.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
FOREHEAD, CHIN = 10, 152
RIGHT_CHEEK, LEFT_CHEEK = 234, 454
_OPENING_POINTS = (UPPER_INNER_LIP, LOWER_INNER_LIP, MOUTH_RIGHT, MOUTH_LEFT)


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners, the usual normaliser for landmark errors."""
    return float(np.linalg.norm(points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2]))


def mouth_opening(points: np.ndarray, indices: tuple[int, ...] | None = None) -> np.ndarray | float:
    """Inner-lip gap divided by mouth width: scale-free, ~0 closed, ~0.5+ wide open. Works on (..., 478, D), or on
    (..., len(indices), D) points that hold the mesh points ``indices`` in that order (``CONTENT_INDICES``, say)."""
    up, low, right, left = (i if indices is None else indices.index(i) for i in _OPENING_POINTS)
    gap = np.linalg.norm(points[..., low, :2] - points[..., up, :2], axis=-1)
    width = np.linalg.norm(points[..., left, :2] - points[..., right, :2], axis=-1)
    return gap / np.maximum(width, 1e-6)


def head_angles(points: np.ndarray) -> tuple[float, float, float]:
    """Approximate (yaw, pitch, roll) in degrees from the 3-D mesh (x, y, z in the same pixel units).

    Yaw from the cheek-to-cheek vector's depth, pitch from forehead-to-chin depth, roll from the eye line. Good
    to a few degrees: enough to report head-turn ranges and flag extreme turns.
    """
    right, left = points[RIGHT_CHEEK], points[LEFT_CHEEK]
    top, bottom = points[FOREHEAD], points[CHIN]
    yaw = np.degrees(np.arctan2(left[2] - right[2], left[0] - right[0]))
    pitch = np.degrees(np.arctan2(bottom[2] - top[2], bottom[1] - top[1]))
    eye_r, eye_l = points[RIGHT_EYE_OUTER], points[LEFT_EYE_OUTER]
    roll = np.degrees(np.arctan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0]))
    return float(yaw), float(pitch), float(roll)
