"""How far down the face the renderer's crop is moved, so that the whole upper lip lies where the paste is full.

The crop is aligned on the upper face (``dubber.face.aligner``) and the redrawn region is fixed in it
(``dubber.render.face_mask``: its top at the canonical face's subnasale, y 0.51; the paste's alpha is full from
about 0.04 below that edge). The lips sit where the speaker's face and head pitch put them: the canonical face's
upper lip begins at y 0.566, most interview and broadcast faces' at 0.52-0.55 (a head tipped down, a short
philtrum), GRID's at 0.59. Where the upper lip lay on the paste's soft edge, the frame's own upper lip and teeth
stayed, and a closed dubbed mouth showed the source's teeth. So the renderer and the paste see the face through a
crop moved down by one offset per video (a per-frame one would shake the drawing): the upper lip's typical top
then lies at ``LIP_TOP`` or lower. The landmark completer keeps the tracked crop; its plan is moved with the crop.
"""

from __future__ import annotations

import numpy as np
import torch

from dubber.face.aligner import Similarity
from dubber.face.landmarks import OUTER_LIP_POINTS

LIP_TOP = 0.57  # unit crop y the upper lip's median top is moved down to, at least
MOST_SHIFT = 0.06  # at most this far (unit crop): beyond it the chin of a wide-open jaw leaves the region


def mouth_shift(points: np.ndarray, size: int) -> float:
    """The downward shift (unit crop, >= 0) for a video whose tracked model points are ``points`` (N, 131, 2),
    NaN where there is no face: 0 when its upper lip already lies at ``LIP_TOP`` or lower. A whole number of
    pixels of the ``size`` crop, so that stored crops move without resampling."""
    top = points[:, OUTER_LIP_POINTS, 1].min(axis=1)  # the upper lip's top: the contour's highest point
    top = top[np.isfinite(top)]
    if len(top) == 0:
        return 0.0
    return round(float(np.clip(LIP_TOP - np.median(top), 0.0, MOST_SHIFT)) * size) / size


def shifted_transform(transform: Similarity, dy: float) -> Similarity:
    """The crop of ``transform`` whose content lies ``dy`` (unit crop) lower: its centre moved up the face."""
    if dy == 0.0:
        return transform
    s, c = np.sin(transform.angle), np.cos(transform.angle)
    step = transform.scale * dy
    # On screen the centre moves by (s, -c) step; an anamorphic frame's stored x is the screen's over its aspect.
    cx = transform.cx + s * step / transform.aspect
    return Similarity(cx, transform.cy - c * step, transform.scale, transform.angle, transform.aspect)


def shifted_points(points: torch.Tensor | np.ndarray, dy: float):
    """Unit-crop points (..., 2) in the crop moved by ``dy``."""
    if dy == 0.0:
        return points
    offset = np.array([0.0, dy], np.float32)
    if isinstance(points, torch.Tensor):
        return points + torch.from_numpy(offset).to(points)
    return points + offset.astype(points.dtype)


def shifted_crops(crops: np.ndarray, dy: float) -> np.ndarray:
    """(K, S, S, 3) crops of stored frames moved down by ``dy`` (whole pixels, ``mouth_shift``): the rows that come
    in at the top (forehead, hair) repeat the crop's first row, which the renderer only reads as context."""
    rows = int(round(dy * crops.shape[1]))
    if rows <= 0:
        return crops
    return np.concatenate([np.repeat(crops[:, :1], rows, axis=1), crops[:, :-rows]], axis=1)


def unshifted_reads(reads: np.ndarray, dy: float) -> np.ndarray:
    """(..., 2) unit coordinates in a crop moved by ``dy`` (the hint warp's read maps) as coordinates in the
    tracked crop, whose square the stored detail crops hold."""
    return shifted_points(reads, -dy)
