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
# Kernel values computed at a time on the CPU (512 KB of float32: the block stays in cache).
_BLOCK = 1 << 17
_BLOCK_GPU = 1 << 26  # 256 MB: a GPU wants large kernels
# The crop's corners and edge midpoints, held still: the warp fades out towards the crop's border.
_BORDER = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0], [0.5, 1.0], [0.0, 0.5], [1.0, 0.5]])


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """TPS radial basis U(r) = r^2 log r^2 between (B, N, 2) and (B, M, 2) -> (B, N, M)."""
    return _radial(((a[:, :, None] - b[:, None]) ** 2).sum(-1))


def _radial(r2: torch.Tensor) -> torch.Tensor:
    """U = r^2 log r^2 from squared distances (the logarithm taken in place: one buffer fewer, 20% faster on a
    CPU, the same values)."""
    return r2.clamp_min(1e-12).log_().mul_(r2)


def _pixel_grid(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(1, R, C, 2) the (x, y) of the pixel centres on ``rows`` and ``columns`` (unit crop)."""
    y, x = torch.meshgrid(rows, columns, indexing="ij")
    return torch.stack([x, y], -1)[None]


def _spline_read(ctrl: torch.Tensor, coef: torch.Tensor, size: int, first_row: int = 0) -> torch.Tensor:
    """(B, S - first_row, S, 2): where each output pixel centre of rows ``first_row..S-1`` reads the image, from the
    spline through ``ctrl`` (B, n, 2) with coefficients ``coef`` (B, n + 3, 2): pixel + sum_j w_j U(|pixel -
    ctrl_j|) + affine(pixel). A row's values do not depend on which other rows are computed.

    The kernel over every pixel and control point is B x S^2 x n values (145 MB for a batch of 8 at 128 px): made
    whole, memory traffic ruled the dub's render stage (561 ms per batch of 8 on the CPU; 27 ms in blocks that
    stay in cache). The squared distances split into a row and a column part, as the pixel grid does. A block is
    laid out (rows, n, columns): the pixel axis innermost (a multiple of the vector width, where n = 139 is not)
    and the sum over control points one matrix product per row; the squared distances never reach 0 (1e-12 is
    added to the row part, where ``_radial`` clamps: U moves by about 1e-12), which saves the clamp's pass. 3.5 ->
    1.8 ms a crop on one CPU thread, the same read to 3e-4 pixel.
    """
    b, n, _ = ctrl.shape
    device = ctrl.device
    axis = torch.arange(size, device=device, dtype=torch.float32) / size  # pixel centres, as points place them
    down = axis[first_row:]
    height = len(down)
    weights, affine = coef[:, :n].transpose(1, 2)[:, None], coef[:, n:]  # (B, 1, 2, n)
    dx2 = (axis[None, None, :] - ctrl[:, :, :1]) ** 2  # (B, n, S): along a row
    dy2 = (down[None, :, None] - ctrl[:, None, :, 1]) ** 2 + 1e-12  # (B, rows, n): down a column
    block = _BLOCK if device.type == "cpu" else _BLOCK_GPU
    images, rows = max(1, block // (size * size * n)), min(size, max(1, block // (size * n)))
    bend = torch.empty(b, height, 2, size, device=device)
    for i in range(0, b, images):
        for y0 in range(0, height, rows):
            r2 = dy2[i : i + images, y0 : y0 + rows, :, None] + dx2[i : i + images, None]  # (I, rows, n, S)
            u = torch.log(r2).mul_(r2)
            torch.matmul(weights[i : i + images], u, out=bend[i : i + images, y0 : y0 + rows])
    grid = _pixel_grid(down, axis)
    lin = affine[:, None, None]  # (B, 1, 1, 3, 2)
    bend = bend.transpose(2, 3)
    return grid + bend + lin[..., 0, :] + grid[..., :1] * lin[..., 1, :] + grid[..., 1:] * lin[..., 2, :]


def thin_plate_read(source: torch.Tensor, target: torch.Tensor, size: int, first_row: int = 0) -> torch.Tensor:
    """(B, S, S, 2): where each pixel of an S x S output reads its image (unit crop coordinates) so that the
    (B, N, 2) ``source`` points land on ``target``: a spline through the target points (backward mapping).
    ``first_row``: the spline is computed from that row down, for a caller that uses no row above it (the rows
    above read where they lie); those it computes are the whole read's, exactly."""
    b = source.shape[0]
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
    if first_row <= 0:
        return _spline_read(ctrl, coef, size)
    axis = torch.arange(size, device=ctrl.device, dtype=torch.float32) / size
    read = _pixel_grid(axis, axis).repeat(b, 1, 1, 1)
    read[:, first_row:] = _spline_read(ctrl, coef, size, first_row)
    return read


def thin_plate_warp(
    images: torch.Tensor, source: torch.Tensor, target: torch.Tensor, read: torch.Tensor | None = None
) -> torch.Tensor:
    """Warp (B, C, S, S) ``images`` so that their (B, N, 2) ``source`` points (unit crop) land on ``target``;
    ``read``: their ``thin_plate_read`` at S, when the caller has it already.

    Bicubic, not bilinear: the hint is the drawing's detail (split protocol sharpness 0.46 -> 0.53, docs/RENDERER.md).
    """
    size = images.shape[-1]
    if read is None:
        read = thin_plate_read(source, target, size)
    normalised = read.to(images.device) * 2 - 1 + 1 / size  # grid_sample's -1 is a pixel's outer edge
    # Its overshoot at edges is clipped to the images' range.
    lo, hi = images.amin(), images.amax()
    warped = F.grid_sample(images.float(), normalised, mode="bicubic", padding_mode="border", align_corners=False)
    return warped.clamp(float(lo), float(hi)).to(images.dtype)
