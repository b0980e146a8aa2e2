"""The mouth guard: the drawing counts inside the target's lips, elsewhere only as bounded shading of the hint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dubber.face.aligner import canonical_face
from dubber.face.landmarks import ALL_INDICES
from dubber.render import FaceRenderer, lower_face_mask
from dubber.render.mouth_guard import MouthGuard
from dubber.render.reference_blend import ReferenceBlend
from tests.test_renderer import TINY, inputs, randomise, tiny_unet

S = 64


def face_points(batch: int = 2) -> torch.Tensor:
    """The mean face's 131 model points (pose, jaw, outer lips, inner lips)."""
    return torch.from_numpy(canonical_face()[list(ALL_INDICES)]).float()[None].repeat(batch, 1, 1)


def test_inside_the_lips_the_drawing_stays_and_elsewhere_only_its_bounded_shading():
    guard = MouthGuard()
    points = face_points()
    weight = guard.mouth_weight(points, S)
    assert weight.shape == (2, 1, S, S) and 0.0 <= float(weight.min()) and float(weight.max()) <= 1.0
    centre = (points[0, 74 + 17 : 74 + 37].mean(0) * S).round().long()  # the outer lips' centre, (x, y)
    assert weight[0, 0, centre[1], centre[0]] == pytest.approx(1.0, abs=1e-4)
    assert float(weight[0, 0, :8].max()) == 0.0  # the forehead: nothing of the mouth
    g = torch.Generator().manual_seed(0)
    hint = torch.rand((2, 3, S, S), generator=g) * 2 - 1
    drawn = torch.rand((2, 3, S, S), generator=g) * 2 - 1
    drawn[:, :, 4:14, 4:20] = -1.0  # a dark smudge far from the mouth
    out = guard(drawn, hint, points)
    inside, outside = weight[:, 0] > 0.999, weight[:, 0] == 0
    assert outside[:, 4:14, 4:20].all()
    # Within a quarter of a level of 255 (the feather's tail reaches 0.999 of the way in).
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[inside], drawn.permute(0, 2, 3, 1)[inside], atol=2e-3, rtol=0)
    limit = guard.shade / 127.5
    assert float((out - hint).abs().permute(0, 2, 3, 1)[outside].max()) <= limit + 1e-5
    # Shading within the limit passes: a smooth change of brightness of 8 levels over the whole crop is kept.
    shaded = hint + 8 / 127.5
    torch.testing.assert_close(guard(shaded, hint, points), shaded, atol=1e-5, rtol=0)
    # No shading allowed: the hint outside the mouth, exactly.
    strict = MouthGuard(shade=0.0)(drawn, hint, points)
    torch.testing.assert_close(strict.permute(0, 2, 3, 1)[outside], hint.permute(0, 2, 3, 1)[outside])


def test_the_guard_is_saved_with_the_weights_and_applied_with_the_blend(tmp_path):
    unet = randomise(tiny_unet())
    crops, lmk, refs, ref_lmk = inputs()
    blend = ReferenceBlend(0.0, 0.0)  # every frame drawn by the network
    guard = MouthGuard(shade=4.0)
    plain = FaceRenderer(unet, reference_blend=blend)(crops, lmk, refs, ref_lmk, steps=1, seed=2)
    guarded = FaceRenderer(unet, reference_blend=blend, mouth_guard=guard)
    out = guarded(crops, lmk, refs, ref_lmk, steps=1, seed=2)
    mask = torch.from_numpy(lower_face_mask(TINY).copy())
    assert torch.equal(out[:, :, mask == 0], crops[:, :, mask == 0])  # outside the region: the crop, as ever
    assert not torch.allclose(out, plain)
    torch.testing.assert_close(guarded(crops, lmk, refs, ref_lmk, steps=1, seed=2, blend=False), plain)
    guarded.save_pretrained(tmp_path / "r")
    assert json.loads((tmp_path / "r" / "renderer.json").read_text())["mouth_guard"] == guard.to_dict()
    loaded = FaceRenderer.from_pretrained(tmp_path / "r")
    assert loaded.mouth_guard == guard
    assert torch.equal(loaded(crops, lmk, refs, ref_lmk, steps=1, seed=2), out)
    old = tiny_unet()
    old.register_to_config(reference_hint=False)
    with pytest.raises(ValueError, match="reference hint"):
        FaceRenderer(old, mouth_guard=guard)


def test_a_malformed_guard_in_renderer_json_is_a_one_line_weights_error(tmp_path):
    from dubber.weights import WeightsError, load_renderer

    FaceRenderer(tiny_unet(), mouth_guard=MouthGuard()).save_pretrained(tmp_path / "r")
    path = tmp_path / "r" / "renderer.json"
    good = json.loads(path.read_text())
    for bad in ([12.0], {"shade": "dark"}, {"shade": -1.0}, {"sigma": 0.0}):
        path.write_text(json.dumps({**good, "mouth_guard": bad}))
        with pytest.raises(WeightsError, match="cannot load the renderer") as err:
            load_renderer(tmp_path / "r")
        assert "\n" not in str(err.value)


def test_the_shipped_renderer_carries_the_guard():
    from dubber.weights import load_renderer, resolve_bundle

    guard = load_renderer(resolve_bundle("default").renderer).mouth_guard
    assert guard is not None and guard.shade > 0
    assert np.isfinite(list(guard.to_dict().values())).all()
