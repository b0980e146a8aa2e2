"""The renderer's sampler-side savings are exact: the subpixel upsample, the precomputed cross-attention keys and
values and the input conv's conditioning share give what the plain computation on diffusers' modules gives."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import Upsample2D
from torch.nn import functional as F

from dubber.models.renderer_unet import RendererUNet, nearest_reference
from dubber.models.talkformer import TalkFormerBlock, TanhGELU, cross_attend, split_key_value
from dubber.models.upsample import phase_kernels, supports, upsample_conv
from dubber.render import FaceRenderer, lower_face_mask, make_scheduler
from dubber.render.reference_blend import ReferenceBlend, reference_mismatch
from dubber.render.renderer_pipeline import initial_noise
from tests.test_renderer import TINY, inputs, tiny_unet


def perturb_all(module: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    """Every parameter moved, so no zero-initialised layer hides a difference."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return module.eval()


@pytest.mark.parametrize(("channels", "out", "h", "w", "bias"), [(8, 8, 4, 4, True), (6, 10, 5, 7, False)])
def test_upsample_conv_is_diffusers_upsample(channels, out, h, w, bias):
    torch.manual_seed(0)
    up = Upsample2D(channels, use_conv=True, out_channels=out, bias=bias)
    x = torch.randn(2, channels, h, w)
    assert supports(up)
    assert torch.allclose(upsample_conv(up, x), up(x), atol=1e-5)
    # the phase kernels sum the taps that read the same input pixel: the (0, 0) phase's top-left tap is alone
    kernels = phase_kernels(up.conv.weight)
    assert kernels.shape == (4 * out, channels, 2, 2)
    assert torch.equal(kernels[:out, :, 0, 0], up.conv.weight[:, :, 0, 0])
    assert torch.allclose(kernels[3 * out :, :, 1, 1], up.conv.weight[:, :, 2, 2])
    for phase in kernels.split(out):  # each phase's 2x2 taps share out all nine of the 3x3 kernel
        assert torch.allclose(phase.sum((2, 3)), up.conv.weight.sum((2, 3)), atol=1e-6)


def test_upsample_conv_declines_other_upsamplers():
    assert not supports(Upsample2D(4, use_conv=False))
    assert not supports(Upsample2D(4, use_conv_transpose=True))
    assert not supports(Upsample2D(4, use_conv=True, kernel_size=1, padding=0))
    assert not supports(torch.nn.Identity())


@pytest.mark.parametrize("shared", [False, True])
def test_cross_attend_is_diffusers_attention(shared):
    torch.manual_seed(0)
    attn = perturb_all(Attention(16, cross_attention_dim=12, heads=4, dim_head=4))
    queries, tokens = torch.randn(3, 20, 16), torch.randn(1 if shared else 3, 7, 12)
    key, value = split_key_value(attn, tokens)
    assert key.shape == (tokens.shape[0], 4, 7, 4)
    expected = attn(queries, encoder_hidden_states=tokens.expand(3, -1, -1))
    assert torch.allclose(cross_attend(attn, queries, key, value), expected, atol=1e-6)


def plain_block(block: TalkFormerBlock, x, lmk, ref):
    """The TalkFormer block as written before the keys and values were split out: diffusers' attention calls."""
    b, c, h, w = x.shape
    t = block.proj_in(block.norm(x).flatten(2).transpose(1, 2)) + block.pos
    if block.self_attn is not None:
        t = t + block.self_attn(block.norm_self(t))
    t = t + block.lmk_attn(block.norm_lmk(t), encoder_hidden_states=lmk)
    t = t + block.ref_attn(block.norm_ref(t), encoder_hidden_states=ref)
    t = t + block.ff(block.norm_ff(t))
    return x + block.proj_out(t).transpose(1, 2).reshape(b, c, h, w)


def plain_forward(unet: RendererUNet, sample, t, masked, mask, landmarks, hint, tokens, drop=None):
    """The denoiser in one piece: inputs concatenated into conv_in, nearest upsample + conv, no precomputation."""
    b = sample.shape[0]
    tokens = {k: v.expand(b, -1, -1) for k, v in tokens.items()}
    lmk = unet.landmark_tokens(landmarks, b, drop)
    emb = unet.time_embedding(unet.time_proj(torch.as_tensor(t).reshape(-1).expand(b)))

    def talk(block, x):
        return plain_block(block, x, lmk, tokens[block.side]) if isinstance(block, TalkFormerBlock) else x

    x = unet.conv_in(F.pixel_unshuffle(torch.cat([sample, masked, mask, hint], 1), unet.patch))
    skips = [x]
    for i, (res, tf, down) in enumerate(zip(unet.down_resnets, unet.down_talk, unet.downsamplers, strict=True)):
        for r, block in zip(res, tf, strict=True):
            x = talk(block, r(x, emb))
            skips.append(x)
        if i < len(unet.downsamplers) - 1:
            x = down(x)
            skips.append(x)
    x = unet.mid_res2(talk(unet.mid_talk, unet.mid_res1(x, emb)), emb)
    for res, tf, up in zip(unet.up_resnets, unet.up_talk, unet.upsamplers, strict=True):
        for r, block in zip(res, tf, strict=True):
            x = talk(block, r(torch.cat([x, skips.pop()], 1), emb))
        x = up(x)
    x = F.pixel_shuffle(unet.conv_out(F.silu(unet.norm_out(x))), unet.patch)
    return x + masked * (1 - mask) + hint * mask


def test_denoiser_is_the_plain_computation():
    unet = perturb_all(tiny_unet())
    crops, lmk, refs, ref_lmk = inputs(batch=3)
    refs, ref_lmk = refs[None].repeat(3, 1, 1, 1, 1), ref_lmk[None].repeat(3, 1, 1, 1)
    mask = torch.from_numpy(lower_face_mask(TINY).copy()).expand(3, 1, -1, -1)
    masked, hint = crops * (1 - mask), nearest_reference(refs, ref_lmk, lmk)
    sample = torch.randn(3, 3, TINY, TINY, generator=torch.Generator().manual_seed(5))
    drop = torch.tensor([False, True, False])
    with torch.no_grad():
        tokens = unet.encode_references(refs, ref_lmk)
        expected = plain_forward(unet, sample, 400, masked, mask, lmk, hint, tokens, drop)
        got = unet(sample, 400, masked, mask, lmk, refs, ref_lmk, drop_landmarks=drop)
        assert torch.allclose(got, expected, atol=1e-5)
        # conditioned once, denoised at two timesteps: the same as two plain calls
        cond = unet.condition(masked, mask, lmk, tokens, hint, drop)
        for t in (900, 50):
            assert torch.allclose(
                unet.denoise(sample, t, cond),
                plain_forward(unet, sample, t, masked, mask, lmk, hint, tokens, drop),
                atol=1e-5,
            )


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_sampler_is_the_plain_loop(guidance):
    """The pipeline's samples equal a step loop that calls the plain denoiser at every step (shared references
    encoded at batch 1, classifier-free guidance in the same batch)."""
    unet = perturb_all(tiny_unet())
    renderer = FaceRenderer(unet, "dpm++")
    crops, lmk, refs, ref_lmk = inputs(batch=2)
    got = renderer(crops, lmk, refs, ref_lmk, steps=3, seed=4, guidance=guidance)
    mask = renderer.mask(2)
    masked = crops * (1 - mask)
    hint = nearest_reference(refs[None].expand(2, -1, -1, -1, -1), ref_lmk[None].expand(2, -1, -1, -1), lmk)
    with torch.no_grad():
        tokens = unet.encode_references(refs[None], ref_lmk[None])
        sched = make_scheduler("dpm++")
        sched.set_timesteps(3)
        x = initial_noise(TINY, 4, "cpu", torch.float32).expand(2, -1, -1, -1) * sched.init_noise_sigma
        for t in sched.timesteps:
            out = plain_forward(unet, x, t, masked, mask, lmk, hint, tokens)
            if guidance != 1.0:
                free = plain_forward(unet, x, t, masked, mask, lmk, hint, tokens, torch.ones(2, dtype=torch.bool))
                out = free + guidance * (out - free)
            x = sched.step(out, t, x).prev_sample
    assert torch.allclose(got, masked + mask * x.clamp(-1, 1), atol=1e-4)


def test_reference_pool_gathers_what_the_encoder_gives():
    """A video's pool frames are encoded once; any frame's K references are then gathered, not encoded again."""
    unet = perturb_all(tiny_unet())
    g = torch.Generator().manual_seed(7)
    pool = torch.rand((5, 3, TINY, TINY), generator=g) * 2 - 1
    points = inputs(batch=5)[1]
    order = torch.tensor([[0, 3], [4, 4], [2, 1]])
    with torch.no_grad():
        expected = unet.encode_references(pool[order], points[order])
        got = unet.gather_references(unet.encode_reference_pool(pool, points), order)
    assert expected.keys() == got.keys()
    for side in expected:
        assert got[side].shape == expected[side].shape
        assert torch.allclose(got[side], expected[side], atol=1e-5)


def test_frames_the_blend_pastes_are_not_drawn():
    """With the shipped kind of blend (no border), a frame whose nearest reference already matches its target gets
    the paste alone; the network draws only the others, and every frame is what the full batch gave."""
    unet = perturb_all(tiny_unet())
    crops, lmk, refs, ref_lmk = inputs(batch=3)
    lmk[1, 74:] = ref_lmk[0, 74:]  # frame 1 shows the first reference's mouth exactly: mismatch 0
    mismatch = reference_mismatch(ref_lmk[None].expand(3, -1, -1, -1), lmk)
    assert mismatch[1] == 0 and mismatch[[0, 2]].min() > 0
    blend = ReferenceBlend(float(mismatch[[0, 2]].min()) / 2, float(mismatch.max()) * 2)
    batches = []
    denoise = unet.denoise

    def counting(sample, t, cond):
        batches.append(sample.shape[0])
        return denoise(sample, t, cond)

    unet.denoise = counting
    counts: dict[str, int] = {"network": 1}
    got = FaceRenderer(unet, reference_blend=blend)(crops, lmk, refs, ref_lmk, steps=2, seed=1, counts=counts)
    assert batches == [2, 2]  # two steps over frames 0 and 2
    assert counts == {"network": 3}  # added to what was there: the two frames it drew
    batches.clear()
    counts.clear()
    network = FaceRenderer(unet)(crops, lmk, refs, ref_lmk, steps=2, seed=1, counts=counts)
    assert batches == [3, 3] and counts == {"network": 3}
    mask = torch.from_numpy(lower_face_mask(TINY).copy())
    paste = crops * (1 - mask) + mask * nearest_reference(
        refs[None].expand(3, -1, -1, -1, -1), ref_lmk[None].expand(3, -1, -1, -1), lmk
    )
    w = blend.weights(mismatch)[:, None, None, None]
    assert w[1] == 0 and w[[0, 2]].min() > 0
    torch.testing.assert_close(got, (1 - w) * paste + w * network)
    batches.clear()  # nothing to draw: no network call at all
    counts.clear()
    FaceRenderer(unet, reference_blend=ReferenceBlend(10.0, 10.0))(crops, lmk, refs, ref_lmk, steps=2, counts=counts)
    assert batches == [] and counts == {"network": 0}


def test_upsample_conv_reuses_its_kernels_until_the_weight_changes():
    torch.manual_seed(0)
    up = Upsample2D(6, use_conv=True, out_channels=4)
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        first = upsample_conv(up, x)
        held = up.conv.__dict__["_phase_kernels"][1]
        assert torch.equal(upsample_conv(up, x), first)
        assert up.conv.__dict__["_phase_kernels"][1] is held  # reused, not rebuilt
        up.conv.weight.mul_(2)  # an in-place update (an optimiser step)
        assert torch.allclose(upsample_conv(up, x), up(x), atol=1e-5)
        up.to(torch.float64)  # new data under the same parameter
        assert torch.allclose(upsample_conv(up, x.double()), up(x.double()), atol=1e-9)
    # training: the gradient reaches the weight through the kernels
    up.float()
    upsample_conv(up, x).sum().backward()
    assert up.conv.weight.grad is not None and up.conv.weight.grad.abs().sum() > 0


def test_tanh_gelu_is_the_tanh_form_and_in_half_precision_within_its_rounding():
    x = torch.linspace(-6, 6, 4001)
    assert torch.equal(TanhGELU()(x), torch.nn.GELU(approximate="tanh")(x))
    exact = torch.nn.GELU(approximate="tanh")(x.double())
    half = x.bfloat16()
    ours = (TanhGELU()(half).double() - exact).abs().max()
    torchs = (torch.nn.GELU(approximate="tanh")(half).double() - exact).abs().max()
    assert ours <= 1.5 * torchs  # as near the trained function as bfloat16's own tanh form is
