"""The landmark completer's training loss: point L1 + velocity L1, shared by ``dub train landmarks`` and the joint
fine-tuning of the completer with the renderer. (An L2 point loss, an extra mouth-opening term and other weights of
the velocity term were measured without gain: docs/LANDMARKS.md.)"""

from __future__ import annotations

import torch

VELOCITY_WEIGHT = 1.0  # beside the point loss's 1: the frame-to-frame motion matters as much as the positions


def landmark_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``pred`` and ``target`` (B, T, 57, 2) -> the loss and its parts (floats, for the log)."""
    l1 = (pred - target).abs().mean()
    vel = ((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()
    return l1 + VELOCITY_WEIGHT * vel, {"l1": float(l1.detach()), "velocity": float(vel.detach())}
