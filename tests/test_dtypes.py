"""Every model in every precision: weights loaded in bfloat16 (CPU) or float16 (CUDA) give what float32 gives, to
within half precision's rounding.

Why the tolerances: bfloat16 keeps 8 significant bits, float16 11, so each operation rounds by up to 2^-9 (2^-12) of
its value. The completer's output is float32 reference geometry plus learned offsets of a few hundredths of the crop,
so only the offsets carry that rounding: 2e-3 crop units (a quarter of a pixel in a 128 px crop). The renderer draws
in [-1, 1]: a few roundings through the network move a pixel by a few levels of 255, never by what the redraw
itself changes (tens of levels).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dubber import DubbingPipeline
from dubber.face.aligner import canonical_face
from dubber.face.landmarks import ALL_INDICES
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.speech_encoder import SpeechEncoder, SpeechEncoderConfig
from dubber.render import FaceRenderer
from tests.dub_checks import frames_of, outside_mask
from tests.media_factory import make_audio, make_face_video
from tests.test_renderer import inputs, randomise, tiny_unet
from tests.tiny_bundle import make_tiny_weights

LANDMARK_TOLERANCE = 2e-3  # crop units
PIXEL_TOLERANCE, MEAN_PIXEL_TOLERANCE = 8, 1.0  # levels of 255 in the redrawn region: largest, mean


def _completer_inputs(cfg: LandmarkCompleterConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    face = torch.from_numpy(canonical_face()[list(ALL_INDICES)])
    refs = face[None, None] + 0.01 * torch.randn((2, cfg.n_refs, 131, 2), generator=g)
    pose = face[None, None, :74] + 0.005 * torch.randn((2, cfg.window, 74, 2), generator=g)
    return torch.randn((2, cfg.window, cfg.audio_steps, cfg.n_features), generator=g), pose, refs


def test_each_model_loads_in_bfloat16_and_computes_what_float32_does(tmp_path):
    torch.manual_seed(0)
    cfg = LandmarkCompleterConfig.named("tiny")
    completer = LandmarkCompleter(cfg).eval()
    with torch.no_grad():  # the heads start at zero: give them weights so the networks' share shows
        for head in (completer.lip_head, completer.jaw_head):
            head.weight.normal_(0, 0.02)
    completer.save_pretrained(tmp_path / "completer")
    half = LandmarkCompleter.from_pretrained(tmp_path / "completer", dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        full_out, half_out = completer(*_completer_inputs(cfg)), half(*_completer_inputs(cfg))
    offsets = full_out - LandmarkCompleter(cfg).eval()(*_completer_inputs(cfg))  # what the networks added
    assert half_out.dtype == torch.float32 and offsets.abs().max() > 10 * LANDMARK_TOLERANCE
    assert (full_out - half_out).abs().max() < LANDMARK_TOLERANCE

    encoder = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    encoder.save_pretrained(tmp_path / "speech")
    half_encoder = SpeechEncoder.from_pretrained(tmp_path / "speech", dtype=torch.bfloat16)
    mel = torch.randn(2, 80, 2 * encoder.config.n_ctx)
    with torch.no_grad():
        full_feats, half_feats = encoder(mel, 1), half_encoder(mel.bfloat16(), 1).float()
    assert (full_feats - half_feats).norm() / full_feats.norm() < 0.02  # 8 significant bits: ~0.4% here

    FaceRenderer(randomise(tiny_unet()), "dpm++").save_pretrained(tmp_path / "renderer")
    full_r = FaceRenderer.from_pretrained(tmp_path / "renderer")
    half_r = FaceRenderer.from_pretrained(tmp_path / "renderer", dtype=torch.bfloat16)
    crops, lmk, refs, ref_lmk = inputs()
    pool_full, pool_half = full_r.encode_reference_pool(refs, ref_lmk), half_r.encode_reference_pool(refs, ref_lmk)
    for side, tokens in pool_full.items():  # the reference encoder
        assert pool_half[side].dtype == torch.bfloat16
        assert (tokens - pool_half[side].float()).norm() / tokens.norm() < 0.02
    a = full_r(crops, lmk, refs, ref_lmk, steps=3, seed=7)
    b = half_r(crops, lmk, refs, ref_lmk, steps=3, seed=7)
    assert b.dtype == torch.float32 and (a - crops).abs().mean() > 0.1  # the redraw moves pixels a lot...
    assert (a - b).abs().max() < PIXEL_TOLERANCE / 127.5 and (a - b).abs().mean() < MEAN_PIXEL_TOLERANCE / 127.5


def _compare_dubs(tmp_path, device: str, dtype: str, weights: str) -> None:
    """The same dub in float32 on the CPU and in ``dtype`` on ``device``, losslessly encoded: identical outside
    the redrawn region, close inside it."""
    clip = make_face_video(tmp_path / "face.mp4", frames=12)
    speech = make_audio(tmp_path / "s.wav", seconds=0.48)
    outs = {}
    for name, dev, dt in (("reference", "cpu", "float32"), ("half", device, dtype)):
        pipe = DubbingPipeline.from_pretrained(weights, device=dev, dtype=dt)
        # Without the source detail, which pulls the redrawn region towards the source: the guard below wants the
        # networks' drawing compared, not the frame's.
        outs[name] = pipe(
            clip, speech, tmp_path / f"{name}.mp4", steps=2, crf=0, preset="ultrafast", source_detail=False
        )
    assert outs["half"].face_frames == outs["reference"].face_frames == 12
    reference, half, source = frames_of(tmp_path / "reference.mp4"), frames_of(tmp_path / "half.mp4"), frames_of(clip)
    redrawn = 0
    for keep, r, h, s in zip(outside_mask(clip, 192, dilate=2), reference, half, source, strict=True):
        assert np.array_equal(r[keep], h[keep])
        inside_r, inside_h = r[~keep].astype(int), h[~keep].astype(int)
        diff = np.abs(inside_r - inside_h)
        assert diff.max() <= PIXEL_TOLERANCE and diff.mean() <= MEAN_PIXEL_TOLERANCE
        redrawn += np.abs(inside_r - s[~keep].astype(int)).max() > 4 * PIXEL_TOLERANCE
    assert redrawn >= 10  # the comparison is not of two untouched faces


@pytest.fixture(scope="module")
def ensemble_root(tmp_path_factory):
    """The shipped layout in small: a mel and a speech completer (with its speech encoder) and a renderer."""
    return make_tiny_weights(tmp_path_factory.mktemp("weights"), "tiny-ensemble", ensemble=True)


def test_a_bfloat16_dub_on_the_cpu_matches_float32(tmp_path, ensemble_root, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(ensemble_root))
    _compare_dubs(tmp_path, "cpu", "bfloat16", "tiny-ensemble")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["auto", "float16", "bfloat16"])
def test_a_half_precision_dub_on_cuda_matches_float32(tmp_path, ensemble_root, monkeypatch, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    monkeypatch.setenv("DUB_WEIGHTS", str(ensemble_root))
    pipe = DubbingPipeline.from_pretrained("tiny-ensemble", device="cuda", dtype=dtype)
    expected = torch.float16 if dtype == "auto" else getattr(torch, dtype)
    for model in (pipe.landmarks, pipe.speech_encoder, pipe.renderer.unet):
        assert {p.dtype for p in model.parameters()} == {expected} and next(model.parameters()).is_cuda
    _compare_dubs(tmp_path, "cuda", dtype, "tiny-ensemble")


def test_a_model_copied_to_half_precision_keeps_float32_positions():
    """What the CUDA default crashed on: diffusers' loader leaves non-persistent buffers in float32."""
    unet = copy.deepcopy(randomise(tiny_unet()))
    for p in unet.parameters():
        p.data = p.data.to(torch.bfloat16)
    renderer = FaceRenderer(unet)
    crops, lmk, refs, ref_lmk = inputs()
    assert {b.dtype for b in unet.buffers()} == {torch.float32}
    out = renderer(crops, lmk, refs, ref_lmk, steps=1, seed=0)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_the_cpu_is_bfloat16_only_where_the_cpu_has_it(monkeypatch, native):
    from dubber.pipeline import options

    assert isinstance(options.native_bfloat16(), bool)  # the probe answers on any CPU
    monkeypatch.setattr(options, "native_bfloat16", lambda: native)
    assert options.resolve_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert options.resolve_dtype("float32", "cpu") == torch.float32
