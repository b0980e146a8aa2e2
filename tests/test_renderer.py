"""The diffusion renderer: TalkFormer UNet, sampling pipeline, training (renderer and joint), evaluation metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dubber.cli.app import run
from dubber.data.cache import PrepCache
from dubber.data.render_clips import load_render_clips
from dubber.evaluation.image_metrics import psnr, ssim
from dubber.face.aligner import canonical_face
from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.render import FaceRenderer, lower_face_mask, make_scheduler
from dubber.training.diffusion_loss import DiffusionLossConfig, diffusion_loss, step_generator
from dubber.training.renderer_data import RenderSampler
from tests.synthetic_cache import make_cache

TINY = 32


def tiny_unet(seed: int = 0, residual: bool = True) -> RendererUNet:
    torch.manual_seed(seed)
    return RendererUNet(**{**renderer_config("tiny"), "hint_residual": residual})


def randomise(unet: RendererUNet, seed: int = 1) -> RendererUNet:
    """Non-zero output layers, so sampling tests see a model that does something (they start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "conv_out" in name or "proj_out" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return unet


def inputs(batch: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    crops = torch.rand((batch, 3, TINY, TINY), generator=g) * 2 - 1
    face = torch.from_numpy(canonical_face()[:131]).float()  # any 131 plausible points
    lmk = face[None].repeat(batch, 1, 1) + torch.randn((batch, 131, 2), generator=g) * 0.01
    refs = torch.rand((2, 3, TINY, TINY), generator=g) * 2 - 1
    ref_lmk = face[None].repeat(2, 1, 1)
    return crops, lmk, refs, ref_lmk


def test_named_configs_and_zero_start():
    from dubber.models.renderer_unet import nearest_reference

    unet = tiny_unet()
    crops, lmk, refs, ref_lmk = inputs()
    refs, ref_lmk = refs[None].repeat(3, 1, 1, 1, 1), ref_lmk[None].repeat(3, 1, 1, 1)
    mask = torch.from_numpy(lower_face_mask(TINY).copy()).expand(3, 1, -1, -1)
    masked = crops * (1 - mask)
    out = unet(crops, 10, masked, mask, lmk, refs, ref_lmk)
    assert out.shape == (3, 3, TINY, TINY)
    # Zero-initialised output layer: an untrained residual model is exactly the reference paste.
    paste = masked + mask * nearest_reference(refs, ref_lmk, lmk)
    assert torch.equal(out, paste)
    whole = RendererUNet(**{**renderer_config("tiny"), "hint_residual": False})
    assert torch.count_nonzero(whole(crops, 10, masked, mask, lmk, refs, ref_lmk)) == 0
    with pytest.raises(ValueError, match="hint_residual needs"):
        RendererUNet(**{**renderer_config("tiny"), "prediction_type": "v_prediction"})
    assert all(renderer_config(name)["hint_residual"] for name in ("tiny", "small", "base"))
    with pytest.raises(ValueError, match="unknown renderer config"):
        renderer_config("huge")
    assert renderer_config("small")["talk_sides"] == (32, 16, 8)


def test_landmark_gradients_reach_the_coordinates():
    unet = randomise(tiny_unet())
    crops, lmk, refs, ref_lmk = inputs()
    lmk = lmk.clone().requires_grad_(True)
    out = unet(
        crops,
        500,
        crops,
        torch.ones(3, 1, TINY, TINY),
        lmk,
        refs[None].repeat(3, 1, 1, 1, 1),
        ref_lmk[None].repeat(3, 1, 1, 1),
    )
    out.square().mean().backward()
    assert lmk.grad is not None and lmk.grad.abs().sum() > 0


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++"])
def test_sampling_is_seeded_batch_invariant_and_keeps_the_outside(scheduler):
    renderer = FaceRenderer(randomise(tiny_unet()), scheduler)
    crops, lmk, refs, ref_lmk = inputs()
    a = renderer(crops, lmk, refs, ref_lmk, steps=3, seed=7)
    b = renderer(crops, lmk, refs, ref_lmk, steps=3, seed=7)
    c = renderer(crops, lmk, refs, ref_lmk, steps=3, seed=8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # A frame renders the same alone as inside a batch: every frame starts from the same noise.
    alone = renderer(crops[1:2], lmk[1:2], refs, ref_lmk, steps=3, seed=7)
    torch.testing.assert_close(alone[0], a[1], atol=1e-5, rtol=1e-5)
    outside = torch.from_numpy(lower_face_mask(TINY).copy()) == 0
    assert torch.equal(a[:, :, outside], crops[:, :, outside])
    assert not torch.equal(a[:, :, ~outside], crops[:, :, ~outside])


def test_guidance_changes_the_output_and_unknown_scheduler_is_refused():
    renderer = FaceRenderer(randomise(tiny_unet()))
    crops, lmk, refs, ref_lmk = inputs()
    with torch.no_grad():
        renderer.unet.null_landmarks.normal_()
    plain = renderer(crops, lmk, refs, ref_lmk, steps=2, seed=0)
    guided = renderer(crops, lmk, refs, ref_lmk, steps=2, seed=0, guidance=3.0)
    assert not torch.allclose(plain, guided)
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("euler")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_one_dpm_step_is_the_models_estimate_as_the_scheduler_computes_it(dtype, guidance, monkeypatch):
    """At one step the sampler skips DPM-Solver++ (and the scipy import of its module): its step from pure noise to
    sigma 0 is the model's x0 estimate. The scheduler's own step gives the same bits."""
    from dubber.render import renderer_pipeline

    made = []
    real_make = renderer_pipeline.make_scheduler
    monkeypatch.setattr(renderer_pipeline, "make_scheduler", lambda *args: made.append(args[0]) or real_make(*args))
    renderer = FaceRenderer(randomise(tiny_unet()).to(dtype), "dpm++")
    crops, lmk, refs, ref_lmk = inputs()
    with torch.no_grad():
        renderer.unet.null_landmarks.normal_()
    assert renderer_pipeline.one_step_is_the_estimate("dpm++", 1, "sample")
    shortcut = renderer(crops, lmk, refs, ref_lmk, steps=1, seed=3, guidance=guidance)
    assert made == []  # no scheduler at one step
    monkeypatch.setattr(renderer_pipeline, "one_step_is_the_estimate", lambda *args: False)
    stepped = renderer(crops, lmk, refs, ref_lmk, steps=1, seed=3, guidance=guidance)
    assert made == ["dpm++"]  # the scheduler's own step
    assert torch.equal(shortcut, stepped)
    assert not renderer_pipeline.one_step_is_the_estimate("ddim", 1, "sample")
    assert not renderer_pipeline.one_step_is_the_estimate("dpm++", 2, "sample")
    assert not renderer_pipeline.one_step_is_the_estimate("dpm++", 1, "v_prediction")


def test_save_load_gives_identical_outputs(tmp_path):
    renderer = FaceRenderer(randomise(tiny_unet()), "ddim")
    crops, lmk, refs, ref_lmk = inputs()
    before = renderer(crops, lmk, refs, ref_lmk, steps=2, seed=3)
    renderer.save_pretrained(tmp_path / "r")
    loaded = FaceRenderer.from_pretrained(tmp_path / "r")
    assert loaded.scheduler_name == "ddim"
    assert torch.equal(before, loaded(crops, lmk, refs, ref_lmk, steps=2, seed=3))
    assert (tmp_path / "r" / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_mask_covers_the_mouth_and_spares_the_eyes():
    face = canonical_face()
    mask = lower_face_mask(128)

    def at(i: int) -> float:
        x, y = np.round(face[i] * 128).astype(int)
        return mask[min(y, 127), min(x, 127)]

    assert all(at(i) == 1 for i in (13, 14, 61, 291, 152, 172, 397))  # lips, chin, lower jaw
    assert all(at(i) == 0 for i in (33, 263, 168, 4, 10))  # eyes, nose bridge and tip, forehead
    assert lower_face_mask(128).flags.writeable is False


def test_psnr_and_ssim_known_answers():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr(a, a) == math.inf and psnr(a, a, cap=100.0) == 100.0
    b = a.astype(np.int16)
    b[:20] += 4
    b = np.clip(b, 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / mse))
    mask = np.zeros((40, 40), np.float32)
    mask[20:] = 1
    assert psnr(a, b, mask) == math.inf  # only the untouched half counts
    c = np.clip(a.astype(float) * 0.7 + 30 + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    _, full = skimage_metrics.structural_similarity(
        a,
        c,
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=True,
        data_range=255,
        full=True,
    )
    assert ssim(a, c) == pytest.approx(full.mean(), abs=1e-6)
    assert ssim(a, a, mask) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def crop_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("render_cache")
    speakers = {"ann": "train", "bob": "train", "cat": "video_only", "dan": "dev"}
    return make_cache(root, speakers, clips_per_speaker=2, frames=40, crops=True)


def test_sampler_references_keep_their_distance_and_batches_repeat(crop_cache):
    clips = load_render_clips(PrepCache(crop_cache), ("train", "video_only"), size=TINY, max_frames=12)
    assert {c.speaker for c in clips} == {"ann", "bob", "cat"}
    assert clips[0].crops.shape[1:] == (TINY, TINY, 3)
    sampler = RenderSampler(clips, n_refs=2, min_gap=5)
    for c, i in sampler.entries[:20]:
        cands = clips[c].reference_candidates(int(i), 5)
        assert np.all(np.abs(clips[c].frame_index[cands] - clips[c].frame_index[i]) >= 5)
    a, b = sampler.batch(4, 0, 3), sampler.batch(4, 0, 3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["refs"].shape == (4, 2, 3, TINY, TINY) and a["target"].min() >= -1 and a["target"].max() <= 1


def test_target_and_references_share_their_framing_jitter(crop_cache):
    clips = load_render_clips(PrepCache(crop_cache), ("train", "video_only"), size=TINY, max_frames=12)

    def transforms(own: float) -> np.ndarray:
        """The similarity each image of one augmented sample went through, fitted from its points."""
        sampler = RenderSampler(clips, n_refs=2, own_jitter=own)
        c, i = sampler.entries[3]
        rng = np.random.default_rng(11)
        refs = rng.choice(clips[c].reference_candidates(int(i), 5), 2, replace=False)
        _, points = sampler.sample(int(c), int(i), np.random.default_rng(11), True)
        fitted = []
        for before, after in zip([clips[c].points[i], *clips[c].points[refs]], points, strict=True):
            a = np.hstack([before, np.ones((len(before), 1))])
            fitted.append(np.linalg.lstsq(a, after, rcond=None)[0])
        return np.stack(fitted)

    shared = transforms(0.0)
    assert np.abs(shared - shared[0]).max() < 1e-4  # one framing for target and references
    assert np.abs(shared[0] - np.vstack([np.eye(2), np.zeros(2)])).max() > 1e-3  # which is a real jitter
    own = transforms(0.2)
    spread = np.abs(own - own[0]).max()
    assert 1e-4 < spread < 0.3 * np.abs(own[0] - np.vstack([np.eye(2), np.zeros(2)])).max() + 0.02


@pytest.mark.parametrize("residual", [False, True])
def test_tiny_renderer_trains_and_its_loss_falls(crop_cache, tmp_path, residual):
    from dubber.render.renderer_pipeline import training_scheduler

    clips = load_render_clips(PrepCache(crop_cache), ("train", "video_only"), size=TINY, max_frames=20)
    sampler = RenderSampler(clips, n_refs=2)
    unet = tiny_unet(residual=residual)
    if residual:  # its zero start is the reference paste, already near perfect on these synthetic faces
        randomise(unet)
    sched = training_scheduler()
    cfg = DiffusionLossConfig(drop_landmarks=0.0)
    fixed = sampler.batch(16, seed=99, step=0, augment=False)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(diffusion_loss(unet, sched, fixed, cfg, step_generator(5, 0, 0))[0])

    before = held_out_loss()
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    for step in range(120):
        loss, _ = diffusion_loss(unet, sched, sampler.batch(8, 0, step), cfg, step_generator(0, step, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = held_out_loss()
    assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_high_noise_share_moves_timesteps_to_the_top_tenth(crop_cache, share):
    from dubber.render.renderer_pipeline import training_scheduler

    clips = load_render_clips(PrepCache(crop_cache), ("train",), size=TINY, max_frames=8)
    batch = RenderSampler(clips, n_refs=2).batch(64, seed=0, step=0, augment=False)
    unet = tiny_unet()
    sched = training_scheduler()
    seen: list[torch.Tensor] = []
    add_noise = sched.add_noise
    sched.add_noise = lambda x0, noise, t: (seen.append(t), add_noise(x0, noise, t))[1]
    with torch.no_grad():
        loss_plain = diffusion_loss(unet, sched, batch, DiffusionLossConfig(), step_generator(3, 1, 0))[0]
        loss = diffusion_loss(unet, sched, batch, DiffusionLossConfig(high_noise_share=share), step_generator(3, 1, 0))[
            0
        ]
    plain, t = seen
    top = sched.config.num_train_timesteps * 9 // 10
    moved = t != plain
    assert torch.all(t[moved] >= top)  # every moved sample went to the top tenth
    share_top = float((t >= top).float().mean())
    if share == 0.0:
        assert torch.equal(t, plain) and torch.equal(loss, loss_plain)  # older runs draw exactly what they drew
    elif share == 1.0:
        assert share_top == 1.0
    else:
        assert 0.35 < share_top < 0.75, share_top  # 0.5 + 0.05 of the rest, drawn from 64 samples


def test_train_renderer_cli_resumes_exactly_and_evaluates(crop_cache, tmp_path, capsys):
    from safetensors.torch import load_file

    def train(out, steps, resume=False):
        args = [
            "train",
            "renderer",
            "--data",
            str(crop_cache),
            "--out",
            str(out),
            "--set",
            "model=tiny",
            "--max-steps",
            str(steps),
            "--eval-every",
            "6",
            "--set",
            "max_frames_per_clip=12",
            "--json",
        ]
        if resume:
            args.append("--resume")
        capsys.readouterr()
        assert run(args) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    full = train(tmp_path / "full", 12)
    assert full["step"] == 12 and full["stopped"] == "max_steps"
    # 6 steps, then resumed to 12 == 12 at once, bit for bit (both 6-step legs are inside the 200-step warm-up,
    # so the learning rates match; the saved config's schedule length is then raised to 12).
    first = train(tmp_path / "six", 6)
    assert first["step"] == 6
    cfg = json.loads((tmp_path / "six" / "config.json").read_text())
    cfg["train"]["max_steps"] = 12
    (tmp_path / "six" / "config.json").write_text(json.dumps(cfg))
    resumed = train(tmp_path / "six", 12, resume=True)
    assert resumed["step"] == 12
    a = load_file(tmp_path / "full" / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "six" / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "full" / "grids").iterdir()) == ["step_0000006.png", "step_0000012.png"]
    evals = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals and all(math.isfinite(e["all_model_psnr"]) for e in evals)

    capsys.readouterr()
    code = run(
        [
            "eval",
            "renderer",
            "--data",
            str(crop_cache),
            "--weights",
            str(tmp_path / "full" / "model"),
            "--steps",
            "2",
            "--grid",
            str(tmp_path / "grid.png"),
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    assert summary["groups"]["unseen"]["reference_paste"]["samples"] > 0
    assert summary["groups"]["unseen"]["truth"]["psnr"] == 100.0  # the truth against itself: the capped floor
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_renderer_training_leaves_held_out_speakers_out(crop_cache, tmp_path):
    from dubber.training.renderer_trainer import RendererTrainConfig, train_renderer

    (tmp_path / "bench.csv").write_text("path,split,speaker\nx.mp4,held_out,cat\n")
    cfg = RendererTrainConfig(
        model="tiny", max_steps=1, max_frames_per_clip=8, eval_every=10**6, hold_out=str(tmp_path / "bench.csv")
    )
    train_renderer(crop_cache, tmp_path / "run", cfg, device="cpu")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(saved["train_speakers"]) == {"ann", "bob"} and saved["held_out_speakers"] == ["cat"]
    assert saved["train"]["hold_out"] == str((tmp_path / "bench.csv").resolve())


def test_eval_renderer_bad_weights_is_one_line(crop_cache, tmp_path, capsys):
    assert run(["eval", "renderer", "--data", str(crop_cache), "--weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a renderer folder" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_joint_training_moves_the_landmark_completer_through_the_renderer(crop_cache, tmp_path):
    from dubber.evaluation.joint_eval import EndToEndDev
    from dubber.models.landmark_completer import LandmarkCompleter, LandmarkCompleterConfig
    from dubber.training.joint_trainer import JointTrainConfig, train_joint

    torch.manual_seed(0)
    completer = LandmarkCompleter(LandmarkCompleterConfig.named("tiny"))
    with torch.no_grad():  # heads start at zero; give them a value so their inputs get gradients
        for p in completer.parameters():
            if p.abs().sum() == 0 and p.dim() == 2:
                p.normal_(0, 0.01)
    before = {k: v.clone() for k, v in completer.state_dict().items()}
    renderer = FaceRenderer(randomise(tiny_unet()))
    # landmark_weight 0: the completer can only move through the renderer's diffusion loss.
    cfg = JointTrainConfig(batch_size=4, max_steps=3, eval_every=100, landmark_weight=0.0, max_frames_per_clip=12)
    result = train_joint(
        crop_cache, tmp_path / "joint", completer, renderer, cfg, device="cpu", make_dev=EndToEndDev.from_cache
    )
    assert result.step == 3 and "e2e_psnr" in result.dev_before and "e2e_psnr" in result.dev
    log = [json.loads(x) for x in (tmp_path / "joint" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r.get("eval")] == [0, 3]  # before the first step, and at the last
    after = completer.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("mel") or "encoder" in k for k in moved), moved
    assert (tmp_path / "joint" / "model" / "renderer" / "renderer.json").is_file()
    assert (tmp_path / "joint" / "model" / "landmarks" / "config.json").is_file()


def test_joint_sampler_frequency_warp_changes_only_the_audio(crop_cache):
    from dubber.data.clip_arrays import load_clips
    from dubber.training.joint_trainer import JointSampler

    cache = PrepCache(crop_cache)
    lm_clips = load_clips(cache, "train", min_frames=5)
    render_clips = load_render_clips(cache, ("train",), size=TINY, max_frames=12)
    plain = JointSampler(lm_clips, render_clips, 5, 3, 2, 5, 0.3).batch(6, seed=1, step=2)
    warp = JointSampler(lm_clips, render_clips, 5, 3, 2, 5, 0.3, freq_warp=0.15)
    a, b = warp.batch(6, seed=1, step=2), warp.batch(6, seed=1, step=2)
    assert all(torch.equal(a[k], b[k]) for k in a)  # still a function of seed and step
    assert all(torch.equal(a[k], plain[k]) for k in a if k != "audio")  # drawn last: nothing else moves
    assert not torch.equal(a["audio"], plain["audio"]) and a["audio"].shape == plain["audio"].shape


def test_reference_hint_is_the_reference_nearest_the_target_mouth():
    from dubber.models.renderer_unet import nearest_reference

    g = torch.Generator().manual_seed(0)
    refs = torch.rand((2, 3, 3, 8, 8), generator=g)
    ref_lmk = torch.rand((2, 3, 131, 2), generator=g)
    target = ref_lmk[:, [2, 1]].diagonal(dim1=0, dim2=1).permute(2, 0, 1).clone()  # frame 0 -> ref 2, frame 1 -> 1
    target[:, :74] = 0.5  # pose points do not take part in the choice
    hint = nearest_reference(refs, ref_lmk, target)
    assert torch.equal(hint[0], refs[0, 2]) and torch.equal(hint[1], refs[1, 1])
    assert torch.equal(nearest_reference(refs, ref_lmk, None), refs[:, 0])
    renderer = FaceRenderer(tiny_unet())
    crops, lmk, _, _ = inputs()
    tokens = renderer.encode_references(*inputs()[2:])
    with pytest.raises(ValueError, match="reference crops"):
        renderer(crops, lmk, reference_tokens=tokens)


def test_weights_from_before_the_reference_hint_load_and_compute_the_same():
    from dubber.training.renderer_trainer import load_initial_weights

    torch.manual_seed(0)
    old = randomise(RendererUNet(**{**renderer_config("tiny"), "reference_hint": False, "hint_residual": False}))
    new = RendererUNet(**{**renderer_config("tiny"), "hint_residual": False})
    load_initial_weights(new, old.state_dict(), dict(old.config))
    crops, lmk, refs, ref_lmk = inputs()
    args = (
        crops,
        300,
        crops,
        torch.ones(3, 1, TINY, TINY),
        lmk,
        refs[None].repeat(3, 1, 1, 1, 1),
        ref_lmk[None].repeat(3, 1, 1, 1),
    )
    with torch.no_grad():
        torch.testing.assert_close(new(*args), old(*args))


def test_a_residual_renderer_started_from_a_whole_face_one_starts_as_the_paste(tmp_path):
    from dubber.training.renderer_trainer import initial_config, initial_weights, load_initial_weights

    whole = randomise(RendererUNet(**{**renderer_config("tiny"), "hint_residual": False}))
    FaceRenderer(whole).save_pretrained(tmp_path / "whole")
    assert initial_config(tmp_path / "whole")["hint_residual"] is False
    residual = RendererUNet(**renderer_config("tiny"))
    load_initial_weights(residual, initial_weights(tmp_path / "whole"), initial_config(tmp_path / "whole"))
    assert torch.count_nonzero(residual.conv_out.weight) == 0 and torch.count_nonzero(residual.conv_out.bias) == 0
    assert torch.equal(residual.conv_in.weight, whole.conv_in.weight)  # everything else is kept
    # A residual source keeps its output layer; so does a run's checkpoint, found through the run's config.json.
    FaceRenderer(randomise(residual)).save_pretrained(tmp_path / "res")
    again = RendererUNet(**renderer_config("tiny"))
    load_initial_weights(again, initial_weights(tmp_path / "res"), initial_config(tmp_path / "res"))
    assert torch.equal(again.conv_out.weight, residual.conv_out.weight)
    ckpt = tmp_path / "run" / "checkpoints" / "step_0000010"
    ckpt.mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text(json.dumps({"model": dict(residual.config)}))
    assert initial_config(ckpt / "model.safetensors")["hint_residual"] is True


def test_the_thin_plate_warp_carries_points_onto_their_targets_and_is_the_identity_without_motion():
    from dubber.render.hint_warp import thin_plate_warp

    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)
    points = torch.rand(2, 20, 2) * 0.6 + 0.2
    assert torch.equal(thin_plate_warp(images, points, points), images)
    dot = torch.zeros(1, 1, 64, 64)
    dot[0, 0, 20, 30] = 1.0  # row 20, column 30: unit point (30/64, 20/64)
    anchors = torch.tensor([[0.5, 0.8], [0.3, 0.85], [0.7, 0.85]])
    source = torch.cat([torch.tensor([[30 / 64, 20 / 64]]), anchors])[None]
    target = torch.cat([torch.tensor([[36 / 64, 24 / 64]]), anchors])[None]
    moved = thin_plate_warp(dot, source, target)
    assert divmod(int(moved[0, 0].argmax()), 64) == (24, 36)


def test_a_renderer_with_the_hint_warp_draws_from_the_warped_hint_and_keeps_it_on_disk(tmp_path):
    torch.manual_seed(0)
    unet = RendererUNet(**renderer_config("tiny")).eval()  # zero output layer: it returns its hint in the region
    plain, warped = FaceRenderer(unet, default_steps=1), FaceRenderer(unet, default_steps=1, hint_warp=True)
    crops = torch.rand(2, 3, 32, 32) * 2 - 1
    refs = torch.rand(2, 2, 3, 32, 32) * 2 - 1
    ref_points = torch.rand(2, 2, 131, 2) * 0.6 + 0.2
    targets = ref_points[:, 0] + 0.02  # the hint (reference 0) moved a little
    mask = plain.mask(1)[0, 0] > 0.5
    a, b = plain(crops, targets, refs, ref_points, steps=1), warped(crops, targets, refs, ref_points, steps=1)
    from dubber.render.hint_warp import thin_plate_warp

    expected = thin_plate_warp(refs[:, 0], ref_points[:, 0], targets)
    torch.testing.assert_close(b[..., mask], expected[..., mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(a[..., mask], refs[:, 0][..., mask], atol=1e-5, rtol=0)
    warped.save_pretrained(tmp_path / "r")
    assert FaceRenderer.from_pretrained(tmp_path / "r").hint_warp and not plain.hint_warp


def test_training_with_the_hint_warp_reads_the_warped_hint(crop_cache):
    from dubber.models.renderer_unet import nearest_reference_index
    from dubber.render.hint_warp import thin_plate_warp
    from dubber.render.renderer_pipeline import training_scheduler

    clips = load_render_clips(PrepCache(crop_cache), ("train", "video_only"), size=TINY, max_frames=20)
    batch = RenderSampler(clips, n_refs=2).batch(4, seed=0, step=0)
    unet = tiny_unet(residual=True)  # zero output layer: the x0 it predicts is its hint inside the region
    seen = {}
    unet.register_forward_pre_hook(lambda m, args, kwargs: seen.update(hint=kwargs["hint"]), with_kwargs=True)
    diffusion_loss(unet, training_scheduler(), batch, DiffusionLossConfig(hint_warp=True), step_generator(0, 0, 0))
    rows = torch.arange(4)
    pick = nearest_reference_index(batch["ref_landmarks"], batch["landmarks"])
    expected = thin_plate_warp(batch["refs"][rows, pick], batch["ref_landmarks"][rows, pick], batch["landmarks"])
    torch.testing.assert_close(seen["hint"], expected)
    diffusion_loss(unet, training_scheduler(), batch, DiffusionLossConfig(), step_generator(0, 0, 0))
    assert seen["hint"] is None  # without it the model picks its hint itself, unwarped
