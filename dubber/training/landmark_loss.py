"""The landmark completer's training loss: point L1 (or scaled L2) + velocity L1, and optionally the mouth opening.

Shared by ``dub train landmarks`` and the joint fine-tuning of the completer with the renderer.
"""

from __future__ import annotations

import torch

from dubber.training.landmark_data import OPENING_IN_CONTENT

POINT_LOSSES = ("l1", "l2")


def opening_of(content: torch.Tensor) -> torch.Tensor:
    """Mouth opening (inner-lip gap / mouth width) of content-ordered points (..., 57, 2), differentiable."""
    up, low, right, left = (content[..., i, :] for i in OPENING_IN_CONTENT)
    return (low - up).norm(dim=-1) / (left - right).norm(dim=-1).clamp_min(1e-6)


# Squared point error is scaled so that its gradient equals L1's at a 0.01 error (about 1 px on a 128 px crop).
_L2_SCALE = 50.0


def landmark_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    velocity_weight: float,
    opening_weight: float = 0.0,
    point_loss: str = "l1",
) -> tuple[torch.Tensor, dict]:
    err = pred - target
    l1 = err.abs().mean()
    vel = ((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()
    parts = {"l1": float(l1.detach()), "velocity": float(vel.detach())}
    if point_loss == "l1":
        points = l1
    elif point_loss == "l2":
        # L1 is minimised by the conditional median, L2 by the conditional mean: where the audio leaves the
        # opening uncertain, the median sticks to the commoner closed mouth while the mean opens part way.
        points = _L2_SCALE * err.square().mean()
        parts["l2"] = float(points.detach())
    else:
        raise ValueError(f"unknown point loss {point_loss!r}; choose l1 or l2")
    loss = points + velocity_weight * vel
    if opening_weight > 0:
        # Four of 57 points define the opening, so the point loss barely sees it; this term weighs it on its own.
        opening = (opening_of(pred) - opening_of(target)).abs().mean()
        loss = loss + opening_weight * opening
        parts["opening"] = float(opening.detach())
    return loss, parts
