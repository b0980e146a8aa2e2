"""Reference tokens pooled before the renderer's attention (renderer.json ``reference_key_side``): each reference's
grid averaged in blocks, every path to the tokens pooled alike, and the setting kept with the weights."""

from __future__ import annotations

import pytest
import torch

from dubber.render import FaceRenderer
from dubber.render.reference_keys import pool_reference_tokens
from tests.test_renderer import TINY, inputs, randomise, tiny_unet


def test_each_references_grid_is_averaged_in_blocks_and_small_grids_are_left_alone():
    g = torch.Generator().manual_seed(0)
    b, k, r, c = 2, 3, 8, 5
    grid = torch.randn((b, k, r, r, c), generator=g)
    small = torch.randn((b, k * 4 * 4, c), generator=g)
    out = pool_reference_tokens({32: grid.reshape(b, k * r * r, c), 8: small}, k, 4)
    assert out[32].shape == (b, k * 16, c) and out[8] is small
    pooled = out[32].reshape(b, k, 4, 4, c)
    torch.testing.assert_close(pooled[1, 2, 3, 0], grid[1, 2, 6:8, 0:2].mean((0, 1)))  # reference 2's own block
    with pytest.raises(ValueError):
        pool_reference_tokens({16: torch.zeros(1, 3 * 6 * 6, c)}, 3, 4)  # 6 a side does not pool to 4


def test_the_renderer_pools_every_path_to_the_tokens_and_keeps_the_setting(tmp_path):
    unet = randomise(tiny_unet())
    plain, pooled = FaceRenderer(unet, default_steps=1), FaceRenderer(unet, default_steps=1, reference_key_side=4)
    crops, lmk, refs, ref_lmk = inputs(batch=2)[:4]
    full = plain.encode_references(refs, ref_lmk)
    less = pooled.encode_references(refs, ref_lmk)
    assert {s: t.shape[1] for s, t in full.items()} == {16: 2 * 64, 8: 2 * 64}  # the tiny model's 8-side grids
    assert {s: t.shape[1] for s, t in less.items()} == {16: 2 * 16, 8: 2 * 16}
    torch.testing.assert_close(less[16], pool_reference_tokens(full, len(refs), 4)[16])  # the 2 references
    # The per-video pool of candidates, gathered per frame, gives what encoding those frames' references gives.
    pool = pooled.encode_reference_pool(refs, ref_lmk)
    gathered = pooled.gather_references(pool, torch.tensor([[0, 1], [0, 1]]))
    for side in less:
        torch.testing.assert_close(gathered[side][0], less[side][0])
    a = pooled(crops, lmk, refs, ref_lmk, steps=1, seed=0)
    b = plain(crops, lmk, refs, ref_lmk, steps=1, seed=0)
    assert a.shape == b.shape == (2, 3, TINY, TINY) and not torch.equal(a, b)
    pooled.save_pretrained(tmp_path / "r")
    assert FaceRenderer.from_pretrained(tmp_path / "r").reference_key_side == 4
    plain.save_pretrained(tmp_path / "p")
    assert FaceRenderer.from_pretrained(tmp_path / "p").reference_key_side is None
    with pytest.raises(ValueError):
        FaceRenderer(unet, reference_key_side=0)
