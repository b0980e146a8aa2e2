"""Reference tokens pooled before the renderer's attention reads them (renderer.json ``reference_key_side``).

The TalkFormer blocks at the 32 and 16 px sides attend from every crop position to 16 x 16 tokens of each of the K
references: on a CPU that attention is about half the network's time. Averaging each reference's tokens over 2 x 2
blocks (8 x 8 a reference) quarters it; softmax attention over a block's mean key weighs the block's tokens
together, and the measured dubs do not tell the two apart (docs/RENDERER.md "Reference keys"). A property of a set
of weights, applied at inference only: training reads every token.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def pool_reference_tokens(tokens: dict[int, torch.Tensor], refs_per_item: int, side: int) -> dict[int, torch.Tensor]:
    """``tokens`` {level: (B, K * r * r, C)} (K = ``refs_per_item`` references, each an r x r grid) with every grid
    larger than ``side`` averaged down to ``side`` x ``side``; grids of ``side`` or less are left as they are."""
    out = {}
    for level, tok in tokens.items():
        b, n, c = tok.shape
        r = math.isqrt(n // refs_per_item)
        if r <= side:
            out[level] = tok
            continue
        if r * r * refs_per_item != n or r % side:
            raise ValueError(f"reference tokens of {n} for {refs_per_item} references do not pool to {side} a side")
        grid = tok.reshape(b * refs_per_item, r, r, c).permute(0, 3, 1, 2)
        grid = F.avg_pool2d(grid, r // side)
        out[level] = grid.permute(0, 2, 3, 1).reshape(b, refs_per_item * side * side, c)
    return out
