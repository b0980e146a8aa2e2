"""Choosing reference frames: spread over the speaker's mouth-opening range (IP_LAP), for training and inference."""

from __future__ import annotations

import numpy as np
import torch

from dubber.face.landmarks import JAW, LIP_INDICES, N_POSE

_LIPS = slice(N_POSE + len(JAW), N_POSE + len(JAW) + len(LIP_INDICES))  # the lip points among the 131


def mouth_shape_distance(references: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Distance between mouth shapes: the 40 lip points about their own centre, mean point distance (unit crop).

    ``references`` (..., K, 131, 2) against ``targets`` (..., 131, 2) -> (..., K). Where the mouth sits in the crop
    follows the head's pose; its shape follows the speech, which is what a reference is chosen for.
    """
    ref = references[..., _LIPS, :].float()
    tgt = targets[..., None, _LIPS, :].float()
    ref = ref - ref.mean(dim=-2, keepdim=True)
    tgt = tgt - tgt.mean(dim=-2, keepdim=True)
    return (ref - tgt).norm(dim=-1).mean(-1)


def spread_references(
    opening: np.ndarray, candidates: np.ndarray, count: int, rng: np.random.Generator | None
) -> np.ndarray:
    """Indices of ``count`` frames among ``candidates`` whose mouth openings spread evenly over the range.

    The range runs from the 2nd to the 98th percentile (one mis-tracked frame must not set it); each reference is
    the frame nearest one of ``count`` evenly spaced opening values, ends included (jittered by up to half a
    spacing when ``rng`` is given). The
    references thus show the speaker closed, half open and wide open, as IP_LAP prescribes, even when most frames
    are closed.
    """
    if len(candidates) == 0:
        raise ValueError("no candidate reference frames")
    values = opening[candidates]
    lo, hi = np.percentile(values, [2, 98])
    offsets = np.arange(count) / max(count - 1, 1)  # both ends included: the resting and the widest mouth
    if rng is not None:
        offsets = np.clip(offsets + (rng.random(count) - 0.5) / max(count - 1, 1), 0.0, 1.0)
    targets = lo + (hi - lo) * offsets
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    pos = np.clip(np.searchsorted(sorted_vals, targets), 1, len(order) - 1) if len(order) > 1 else np.zeros(count, int)
    if len(order) > 1:
        left_closer = np.abs(sorted_vals[pos - 1] - targets) <= np.abs(sorted_vals[pos] - targets)
        pos = np.where(left_closer, pos - 1, pos)
    return candidates[order[pos]]
