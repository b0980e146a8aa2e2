"""The renderer's reference blend: weights from the landmark mismatch, sampling with it, saving it, fitting it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dubber.evaluation.blend_fit import blended_psnr, by_mismatch, fit_reference_blend, renderer_paste
from dubber.evaluation.image_metrics import psnr
from dubber.face.aligner import canonical_face
from dubber.face.landmarks import ALL_INDICES, LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from dubber.models.renderer_unet import nearest_reference, nearest_reference_index
from dubber.render import FaceRenderer, lower_face_mask
from dubber.render.reference_blend import ReferenceBlend, blend_with_paste, edge_ramp, reference_mismatch
from tests.test_renderer import TINY, inputs, randomise, tiny_unet


def test_blend_weights_follow_the_mismatch():
    blend = ReferenceBlend(0.02, 0.04)
    w = blend.weights(torch.tensor([0.0, 0.02, 0.03, 0.04, 0.5]))
    torch.testing.assert_close(w, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    step = ReferenceBlend(0.02, 0.02).weights(torch.tensor([0.01, 0.02, 0.03]))
    assert step.tolist() == [0.0, 0.0, 1.0]
    assert ReferenceBlend.from_dict(blend.to_dict()) == blend
    assert ReferenceBlend.from_dict({"paste_below": 0.02, "model_above": 0.04}).edge == 0.0
    with pytest.raises(ValueError, match="paste_below <= model_above"):
        ReferenceBlend(0.05, 0.01)
    with pytest.raises(ValueError):
        ReferenceBlend(-0.01, 0.01)


def test_mismatch_is_the_nearest_references_lip_jaw_distance_over_the_eye_distance():
    _, lmk, _, ref_lmk = inputs(batch=2)
    refs = ref_lmk[None].repeat(2, 1, 1, 1).clone()
    refs[:, 1, 74:] += 0.05  # the second reference is far off; the first is the nearest
    target = lmk.clone()
    target[:, 74:] = refs[:, 0, 74:] + torch.tensor([0.003, -0.004])  # 0.005 away at every lip/jaw point
    eyes = target[:, ALL_INDICES.index(LEFT_EYE_OUTER)] - target[:, ALL_INDICES.index(RIGHT_EYE_OUTER)]
    expected = 0.005 / eyes.norm(dim=-1)
    torch.testing.assert_close(reference_mismatch(refs, target), expected)


def test_a_blend_moves_the_output_between_the_network_and_the_paste():
    unet = randomise(tiny_unet())
    crops, lmk, refs, ref_lmk = inputs()
    mask = torch.from_numpy(lower_face_mask(TINY).copy())
    network = FaceRenderer(unet)(crops, lmk, refs, ref_lmk, steps=2, seed=1)
    paste = crops * (1 - mask) + mask * nearest_reference(
        refs[None].expand(3, -1, -1, -1, -1), ref_lmk[None].expand(3, -1, -1, -1), lmk
    )

    def render(reference_blend, **kw):
        return FaceRenderer(unet, reference_blend=reference_blend)(crops, lmk, refs, ref_lmk, steps=2, seed=1, **kw)

    torch.testing.assert_close(render(ReferenceBlend(0.0, 0.0)), network)  # every mismatch > 0: the network
    torch.testing.assert_close(render(ReferenceBlend(10.0, 10.0, edge=0.0)), paste)  # nothing that far off: paste
    torch.testing.assert_close(render(ReferenceBlend(10.0, 10.0), blend=False), network)
    # With a border: the network's pixels on the region's edge, the paste deep inside, a ramp between.
    bordered = render(ReferenceBlend(10.0, 10.0, edge=0.1))
    ramp = torch.from_numpy(edge_ramp(TINY, 0.1).copy())
    assert ramp.max() == 1.0 and ramp.min() == 0.0 and torch.all(ramp[mask == 0] == 0)
    edge, deep = ramp == 1.0, (ramp == 0.0) & (mask > 0)
    assert edge.any() and deep.any()
    torch.testing.assert_close(bordered[:, :, edge], network[:, :, edge])
    torch.testing.assert_close(bordered[:, :, deep], paste[:, :, deep])
    m = reference_mismatch(ref_lmk[None].expand(3, -1, -1, -1), lmk)
    half = ReferenceBlend(0.0, float(m[0]) * 2, edge=0.0)  # frame 0 exactly halfway
    torch.testing.assert_close(render(half)[0], (network[0] + paste[0]) / 2, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(blend_with_paste(network, paste, m, half), render(half))
    outside = mask == 0
    assert torch.equal(render(half)[:, :, outside], crops[:, :, outside])


def test_the_caller_can_name_each_frames_hint():
    unet = randomise(tiny_unet())
    crops, lmk, refs, ref_lmk = inputs()
    mask = torch.from_numpy(lower_face_mask(TINY).copy())
    paste_only = FaceRenderer(unet, reference_blend=ReferenceBlend(10.0, 10.0, edge=0.0))  # the hint, pasted
    nearest = nearest_reference_index(ref_lmk[None].expand(3, -1, -1, -1), lmk)
    other = 1 - nearest  # two references: the one the mouth alone would not choose
    out = paste_only(crops, lmk, refs, ref_lmk, steps=1, hint_index=other)
    torch.testing.assert_close(out, crops * (1 - mask) + mask * refs[other])
    default = paste_only(crops, lmk, refs, ref_lmk, steps=1)
    torch.testing.assert_close(default, crops * (1 - mask) + mask * refs[nearest])


def test_the_blend_is_saved_with_the_weights_and_needs_a_hint(tmp_path):
    renderer = FaceRenderer(randomise(tiny_unet()), reference_blend=ReferenceBlend(0.01, 0.03))
    crops, lmk, refs, ref_lmk = inputs()
    before = renderer(crops, lmk, refs, ref_lmk, steps=2, seed=3)
    renderer.save_pretrained(tmp_path / "r")
    loaded = FaceRenderer.from_pretrained(tmp_path / "r")
    assert loaded.reference_blend == ReferenceBlend(0.01, 0.03)
    assert torch.equal(before, loaded(crops, lmk, refs, ref_lmk, steps=2, seed=3))
    plain = FaceRenderer(tiny_unet())
    plain.save_pretrained(tmp_path / "p")
    assert FaceRenderer.from_pretrained(tmp_path / "p").reference_blend is None
    old = tiny_unet()
    old.register_to_config(reference_hint=False)
    with pytest.raises(ValueError, match="reference hint"):
        FaceRenderer(old, reference_blend=ReferenceBlend(0.01, 0.03))


def test_the_bands_compare_network_and_paste_by_mismatch():
    rng = np.random.default_rng(2)
    n, size = 12, 16
    mask = lower_face_mask(size)
    truth = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    mismatch = np.array([0.01] * 4 + [0.05] * 5 + [0.2] * 3, np.float32)
    noise = rng.normal(0, 10, truth.shape)
    far = (mismatch > 0.06)[:, None, None, None]
    network = np.clip(truth + noise * np.where(far, 0.5, 2.0), 0, 255).astype(np.uint8)  # better only where far
    paste = np.clip(truth + noise * np.where(far, 2.0, 0.5), 0, 255).astype(np.uint8)
    bands = by_mismatch(network, paste, truth, mask, mismatch)
    assert [(b["from"], b["to"], b["samples"]) for b in bands] == [(0.0, 0.03, 4), (0.03, 0.06, 5), (0.09, None, 3)]
    ones = np.ones(n, np.float32)
    drawn = blended_psnr(network, paste, truth, mask, ones)
    assert bands[2]["network"] == pytest.approx(drawn[9:].mean()) and bands[2]["network_better"] == 1.0
    assert bands[0]["network_better"] == 0.0 and bands[0]["paste"] > bands[0]["network"]


def test_the_fit_mixes_the_network_with_the_renderers_own_paste():
    """The fit's paste is the renderer's hint: the reference nearest the target's mouth shape, warped onto the
    target's landmarks when the weights warp it; its mismatch is that hint's."""
    from dubber.render.hint_warp import thin_plate_warp
    from dubber.render.image_tensors import to_model_range, to_uint8
    from dubber.render.mouth_guard import MouthGuard

    rng = np.random.default_rng(0)
    n, size = 3, 32
    face = canonical_face()[:131].astype(np.float32)
    landmarks = np.repeat(face[None], n, 0)
    landmarks[:, 74:, 1] += np.array([0.0, 0.01, 0.02], np.float32)[:, None]  # the lips and jaw lowered
    ref_landmarks = np.repeat(face[None, None], 2, 1).repeat(n, 0)
    ref_landmarks[:, 0, 74:] += rng.normal(
        0, 0.02, (57, 2)
    )  # the first one's mouth shape is far off: the hint is the second
    refs = rng.integers(0, 256, (n, 2, size, size, 3), dtype=np.uint8)
    drawn = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    network, paste, mismatch = renderer_paste(drawn, landmarks, refs, ref_landmarks, hint_warp=False)
    assert (network == drawn).all() and (paste == refs[:, 1]).all()
    expected = reference_mismatch(torch.from_numpy(ref_landmarks[:, 1:]), torch.from_numpy(landmarks)).numpy()
    np.testing.assert_allclose(mismatch, expected)
    assert mismatch[0] < 1e-6 < mismatch[1] < mismatch[2]
    _, warped, _ = renderer_paste(drawn, landmarks, refs, ref_landmarks, hint_warp=True)
    lm = torch.from_numpy(landmarks)
    hint = thin_plate_warp(to_model_range(refs[:, 1]), torch.from_numpy(ref_landmarks[:, 1]), lm)
    assert (warped == to_uint8(hint)).all() and (warped[2] != refs[2, 1]).any()
    guard = MouthGuard()
    guarded, _, _ = renderer_paste(drawn, landmarks, refs, ref_landmarks, hint_warp=True, mouth_guard=guard)
    assert (guarded == to_uint8(guard(to_model_range(drawn), hint, lm))).all() and (guarded != drawn).any()


def test_blended_psnr_matches_the_metric_and_the_fit_finds_where_the_paste_is_right():
    rng = np.random.default_rng(0)
    n, size = 24, 16
    mask = lower_face_mask(size)
    truth = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    mismatch = np.linspace(0.0, 0.06, n).astype(np.float32)
    noise = rng.normal(0, 12, truth.shape)
    # Near-matching references: the paste is the truth and the network is noisy; far ones the other way round.
    near = mismatch < 0.03
    paste = np.where(near[:, None, None, None], truth, np.clip(truth + noise * 2, 0, 255)).astype(np.uint8)
    network = np.clip(truth + noise * 0.5, 0, 255).astype(np.uint8)
    w = np.full(n, 0.3, np.float32)
    mixed = np.clip(np.round(paste + w[:, None, None, None] * (network.astype(np.float32) - paste)), 0, 255)
    expected = [psnr(mixed[i].astype(np.uint8), truth[i], mask, cap=100.0) for i in range(n)]
    np.testing.assert_allclose(blended_psnr(network, paste, truth, mask, w), expected, rtol=1e-4)
    ramp = edge_ramp(size, 0.25)
    wmap = w[:, None, None, None] + (1 - w[:, None, None, None]) * ramp[None, ..., None]
    mixed = np.clip(np.round(paste + wmap * (network.astype(np.float32) - paste)), 0, 255).astype(np.uint8)
    expected = [psnr(mixed[i], truth[i], mask, cap=100.0) for i in range(n)]
    np.testing.assert_allclose(blended_psnr(network, paste, truth, mask, w, ramp), expected, rtol=1e-4)
    speakers = [f"s{i % 4}" for i in range(n)]
    fit = fit_reference_blend(network, paste, truth, mask, mismatch, speakers, edge=0.0)
    assert 0.025 <= fit.blend.paste_below <= 0.03 and fit.blend.model_above <= 0.035
    assert fit.psnr > max(fit.network_psnr, fit.paste_psnr)
    assert fit.held_out_psnr is not None and fit.held_out_psnr > max(fit.network_psnr, fit.paste_psnr)
    assert set(fit.per_speaker) == {"s0", "s1", "s2", "s3"}
    alone = fit_reference_blend(network, paste, truth, mask, mismatch, ["one"] * n)
    assert alone.blend.edge == 0.0
    assert alone.held_out_psnr is None
    with pytest.raises(ValueError, match="no samples"):
        fit_reference_blend(network[:0], paste[:0], truth[:0], mask, mismatch[:0], [])


def test_renderer_evaluation_scores_the_network_alone_beside_the_blended_output():
    from dubber.evaluation.renderer_eval import DevSamples, evaluate_renderer

    crops, lmk, refs, ref_lmk = inputs(batch=4)

    def to_uint8(t: torch.Tensor) -> np.ndarray:
        return ((t.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)

    dev = DevSamples(
        clip_ids=["a", "a", "b", "b"],
        speakers=["new", "new", "known", "known"],
        frame_index=np.arange(4),
        targets=to_uint8(crops),
        landmarks=lmk.numpy(),
        refs=np.stack([to_uint8(refs)] * 4),
        ref_landmarks=np.stack([ref_lmk.numpy()] * 4),
    )
    unet = randomise(tiny_unet())
    plain, _ = evaluate_renderer(FaceRenderer(unet), dev, steps=1, train_speakers={"known"})
    assert "network" not in plain.groups["unseen"]
    blended, _ = evaluate_renderer(
        FaceRenderer(unet, reference_blend=ReferenceBlend(10.0, 10.0, edge=0.0)), dev, steps=1, train_speakers={"known"}
    )
    groups = blended.groups["unseen"]
    assert groups["network"]["psnr"] == pytest.approx(plain.groups["unseen"]["model"]["psnr"])
    # Thresholds above every mismatch: the pipeline's output is the reference paste.
    assert groups["model"]["psnr"] == pytest.approx(groups["reference_paste"]["psnr"], abs=0.05)


def test_a_malformed_blend_in_renderer_json_is_a_one_line_weights_error(tmp_path):
    import json

    from dubber.weights import WeightsError, load_renderer

    FaceRenderer(tiny_unet(), reference_blend=ReferenceBlend(0.01, 0.03)).save_pretrained(tmp_path / "r")
    settings_path = tmp_path / "r" / "renderer.json"
    good = json.loads(settings_path.read_text())
    assert load_renderer(tmp_path / "r").reference_blend == ReferenceBlend(0.01, 0.03)
    for bad in ([0.01, 0.03], {"paste_below": 0.01}, {"paste_below": 0.05, "model_above": 0.01}):
        settings_path.write_text(json.dumps({**good, "reference_blend": bad}))
        with pytest.raises(WeightsError, match="cannot load the renderer") as err:
            load_renderer(tmp_path / "r")
        assert "\n" not in str(err.value)
    assert not edge_ramp(TINY, 0.1).flags.writeable and not edge_ramp(TINY, 0.0).flags.writeable
