"""TalkFormer conditioning (docs/ARCHITECTURE.md §6): landmark tokens, the shared reference encoder, and the block that
cross-attends to both.

Landmarks enter as numbers (Fourier features of the unit-crop coordinates plus a learned per-point embedding), not
as drawn sketches, so the renderer's loss differentiates with respect to the coordinates and end-to-end training
can update the landmark completer through them.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dubber.models.diffusers_parts import Attention, Downsample2D, ResnetBlock2D


class TanhGELU(nn.Module):
    """``nn.GELU(approximate="tanh")``, the blocks' trained activation; in half precision the exact (erf) GELU instead,
    which lies within that precision's own rounding of the tanh form (bfloat16: both 8e-3 from the tanh form in
    float64; the forms differ by at most 5e-4) and which torch computes about 5 times faster on a CPU (2.0 -> 0.4 ms
    for the 32-side block's 8 x 1024 x 128 activations in bfloat16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="none" if x.dtype in (torch.bfloat16, torch.float16) else "tanh")


class LandmarkTokens(nn.Module):
    """(B, N, 2) unit-crop coordinates -> (B, N, dim) tokens."""

    def __init__(self, n_points: int, dim: int, n_freqs: int) -> None:
        super().__init__()
        # Octave frequencies up to 2^(F-1) * pi over the [-1, 1] crop: the finest resolves ~1/2^F of the crop.
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 + 4 * n_freqs, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.point_embedding = nn.Parameter(torch.randn(n_points, dim) * 0.02)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = (points.float() - 0.5) * 2.0
        angles = x[..., None] * self.freqs  # (B, N, 2, F)
        feats = torch.cat([x, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)], dim=-1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype)) + self.point_embedding


def positional_grid(side: int, dim: int) -> torch.Tensor:
    """(side*side, dim) fixed 2-D sinusoidal positions: aligned crops put the same face part at the same place."""
    quarter = dim // 4
    freq = torch.exp(-math.log(100.0) * torch.arange(quarter, dtype=torch.float32) / max(quarter, 1))
    coords = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 * math.pi
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    parts = [torch.sin(yy[..., None] * freq * side / 4), torch.cos(yy[..., None] * freq * side / 4)]
    parts += [torch.sin(xx[..., None] * freq * side / 4), torch.cos(xx[..., None] * freq * side / 4)]
    grid = torch.cat(parts, dim=-1).reshape(side * side, 4 * quarter)
    return F.pad(grid, (0, dim - grid.shape[1]))


class ReferenceEncoder(nn.Module):
    """One shared encoder for the K reference crops: features at each TalkFormer resolution.

    Its levels mirror the UNet's (pixel-unshuffle by ``patch``, then one resnet and a downsample per level), and the
    features of the levels the UNet attends at are returned as ``{side: (B*K, C, side, side)}``.
    """

    def __init__(self, patch: int, channels: tuple[int, ...], sides: tuple[int, ...], groups: int, size: int) -> None:
        super().__init__()
        self.patch = patch
        self.conv_in = nn.Conv2d(3 * patch * patch, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.sides = []
        side = size // patch
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.blocks.append(ResnetBlock2D(in_channels=prev, out_channels=ch, temb_channels=None, groups=groups))
            self.sides.append(side)
            last = i == len(channels) - 1
            self.downs.append(nn.Identity() if last else Downsample2D(ch, use_conv=True, out_channels=ch, name="op"))
            side = side if last else side // 2
            prev = ch
        self.keep = set(sides)

    def forward(self, refs: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.conv_in(F.pixel_unshuffle(refs, self.patch))
        out = {}
        for block, down, side in zip(self.blocks, self.downs, self.sides, strict=True):
            x = block(x, None)
            if side in self.keep:
                out[side] = x
            x = down(x)
        return out


class ReferenceTokens(nn.Module):
    """Reference features at one side + each reference's landmark tag -> the keys of the warping attention.

    (B*K, C, s, s) features and (B, K, D) tags -> (B, K * r * r, C). The 32-side level is pooled to ``ref_side``
    (16) per side: attention cost stays bounded on a CPU while the finer levels keep their detail. Computed once
    per side and shared by every TalkFormer block at that side.
    """

    def __init__(self, channels: int, ref_side: int, landmark_dim: int) -> None:
        super().__init__()
        self.ref_side = ref_side
        self.register_buffer("pos", positional_grid(ref_side, channels), persistent=False)
        self.tag = nn.Linear(landmark_dim, channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, features: torch.Tensor, tags: torch.Tensor, batch: int) -> torch.Tensor:
        side = features.shape[-1]
        if side != self.ref_side:
            # A whole-number ratio pools the same as the adaptive pool, and ONNX export takes it.
            if side % self.ref_side == 0:
                features = F.avg_pool2d(features, side // self.ref_side)
            else:
                features = F.adaptive_avg_pool2d(features, self.ref_side)
        bk, c = features.shape[:2]
        # The positions stay float32 (a model loaded in half precision keeps its non-persistent buffers as built).
        tokens = features.flatten(2).transpose(1, 2) + self.pos.to(features.dtype)  # (B*K, r*r, C)
        tokens = tokens + self.tag(tags.to(tokens.dtype)).reshape(bk, 1, c)
        return self.norm(tokens.reshape(batch, -1, c))


class TalkFormerBlock(nn.Module):
    """Image tokens at one resolution: optional self-attention, cross-attention to the target's landmark tokens
    (motion alignment), cross-attention to the reference frames' features (implicit warping), feed-forward.

    The output projection starts at zero, so an untrained block is the identity and the UNet starts as a plain
    inpainting network.
    """

    def __init__(
        self,
        channels: int,
        side: int,
        landmark_dim: int,
        heads: int,
        groups: int,
        self_attention: bool,
    ) -> None:
        super().__init__()
        dim_head = channels // heads
        self.side = side
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.register_buffer("pos", positional_grid(side, channels), persistent=False)
        self.self_attn = None
        if self_attention:
            self.norm_self = nn.LayerNorm(channels)
            self.self_attn = Attention(channels, heads=heads, dim_head=dim_head, out_bias=True)
        self.norm_lmk = nn.LayerNorm(channels)
        self.lmk_attn = Attention(channels, cross_attention_dim=landmark_dim, heads=heads, dim_head=dim_head)
        self.norm_ref = nn.LayerNorm(channels)
        self.ref_attn = Attention(channels, cross_attention_dim=channels, heads=heads, dim_head=dim_head)
        self.norm_ff = nn.LayerNorm(channels)
        self.ff = nn.Sequential(nn.Linear(channels, 2 * channels), TanhGELU(), nn.Linear(2 * channels, channels))
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def key_values(self, landmark_tokens: torch.Tensor, ref_tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The two cross-attentions' keys and values, (B, heads, N, dim_head) each. They depend on the target's
        landmarks and the references only, not on the noisy image, so a sampler computes them once for all its
        steps (about 8% of the renderer's multiply-adds at 8 steps). B may be 1 for tokens shared by a batch."""
        return (*split_key_value(self.lmk_attn, landmark_tokens), *split_key_value(self.ref_attn, ref_tokens))

    def forward(
        self,
        x: torch.Tensor,
        landmark_tokens: torch.Tensor | None = None,
        ref_tokens: torch.Tensor | None = None,
        *,
        key_values: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """x: (B, C, side, side); the tokens, or their ``key_values`` computed beforehand."""
        b, c, h, w = x.shape
        if key_values is None:
            key_values = self.key_values(landmark_tokens, ref_tokens)
        lmk_k, lmk_v, ref_k, ref_v = key_values
        residual = x
        t = self.proj_in(self.norm(x).flatten(2).transpose(1, 2)) + self.pos.to(x.dtype)
        if self.self_attn is not None:
            t = t + self.self_attn(self.norm_self(t))
        t = t + cross_attend(self.lmk_attn, self.norm_lmk(t), lmk_k, lmk_v)
        t = t + cross_attend(self.ref_attn, self.norm_ref(t), ref_k, ref_v)
        t = t + self.ff(self.norm_ff(t))
        return residual + self.proj_out(t).transpose(1, 2).reshape(b, c, h, w)


def split_key_value(attn: Attention, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' ``Attention`` key and value projections of (B, N, D) tokens, split into heads."""
    b, n = tokens.shape[:2]
    key, value = attn.to_k(tokens), attn.to_v(tokens)
    return (key.view(b, n, attn.heads, -1).transpose(1, 2), value.view(b, n, attn.heads, -1).transpose(1, 2))


def cross_attend(attn: Attention, queries: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """What diffusers' ``Attention`` (default processor, no norms or residual) computes for (B, L, C) queries, with
    the keys and values given. Keys of batch 1 serve every row."""
    b, n = queries.shape[:2]
    q = attn.to_q(queries).view(b, n, attn.heads, -1).transpose(1, 2)
    if key.shape[0] != b:
        key, value = key.expand(b, -1, -1, -1), value.expand(b, -1, -1, -1)
    out = F.scaled_dot_product_attention(q, key, value).transpose(1, 2).reshape(b, n, -1)
    return attn.to_out[1](attn.to_out[0](out))
