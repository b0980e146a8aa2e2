"""The reference hint carried onto the target's landmarks by a thin-plate spline, before the renderer corrects it.

The hint is the reference frame whose mouth shape is nearest the target's, but a reference pool holds only a few
dozen mouths: the nearest is often a step away in opening, and it was filmed under another head pose. A smooth warp
that moves the hint's 131 points onto the target's (the crop's corners held still) gives the network the person's
own lips, teeth and skin already at the target's geometry, so what is left to draw is detail, not motion.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Added to the kernel's diagonal: lip points nearly coincide on a closed mouth, and an exact interpolation through
# them would fold the image; this much smoothing (unit-crop units squared) keeps the warp one-to-one.
_SMOOTHING = 1e-4
# The crop's corners and edge midpoints, held still: the warp fades out towards the crop's border.
_BORDER = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0], [0.5, 1.0], [0.0, 0.5], [1.0, 0.5]])


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """TPS radial basis U(r) = r^2 log r^2 between (B, N, 2) and (B, M, 2) -> (B, N, M)."""
    r2 = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    return r2 * torch.log(r2.clamp_min(1e-12))


def thin_plate_warp(images: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Warp (B, C, S, S) ``images`` so that their (B, N, 2) ``source`` points (unit crop) land on ``target``.

    Backward mapping: a spline through the target points gives, at every output pixel, where to read the image.
    """
    b, _, size, _ = images.shape
    dtype = images.dtype
    source, target = source.float(), target.float()
    corners = _BORDER.to(source.device).expand(b, -1, -1)
    ctrl = torch.cat([target, corners], 1)  # where the spline is pinned, in output coordinates
    shift = torch.cat([source - target, torch.zeros_like(corners)], 1)  # ... and where it reads from, relative
    n = ctrl.shape[1]
    k = _kernel(ctrl, ctrl) + _SMOOTHING * torch.eye(n, device=ctrl.device)
    p = torch.cat([torch.ones_like(ctrl[..., :1]), ctrl], -1)  # (B, n, 3)
    system = torch.zeros(b, n + 3, n + 3, device=ctrl.device)
    system[:, :n, :n], system[:, :n, n:], system[:, n:, :n] = k, p, p.transpose(1, 2)
    rhs = torch.cat([shift, torch.zeros(b, 3, 2, device=ctrl.device)], 1)
    coef = torch.linalg.solve(system, rhs)  # (B, n + 3, 2)
    axis = torch.arange(size, device=ctrl.device, dtype=torch.float32) / size  # pixel centres, as points place them
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(1, -1, 2).expand(b, -1, -1)
    basis = torch.cat([_kernel(grid, ctrl), torch.ones_like(grid[..., :1]), grid], -1)  # (B, S*S, n + 3)
    read = grid + basis @ coef
    normalised = (read * 2 - 1 + 1 / size).reshape(b, size, size, 2)  # grid_sample's -1 is a pixel's outer edge
    # Bicubic, not bilinear: the hint is the drawing's detail (split protocol sharpness 0.46 -> 0.53, docs/RENDERER.md);
    # its overshoot at edges is clipped to the images' range.
    lo, hi = images.amin(), images.amax()
    warped = F.grid_sample(images.float(), normalised, mode="bicubic", padding_mode="border", align_corners=False)
    return warped.clamp(float(lo), float(hi)).to(dtype)
