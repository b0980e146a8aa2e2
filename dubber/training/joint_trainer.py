"""``dub train joint``: end-to-end fine-tuning, the landmark completer's output feeding the renderer.

The completer predicts lip and jaw points from the audio for a window of T frames; the renderer draws the window's
centre frame conditioned on those points (the pose points come from the video, as at inference). Because the
landmarks enter the renderer as numbers, the diffusion loss reaches the completer through them; the completer's own
L1 + velocity loss is kept so it stays anchored to the true landmarks. Both start from trained weights.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dubber.audio.augment import random_warp
from dubber.data.cache import PrepCache
from dubber.errors import InputError
from dubber.log import get_logger
from dubber.models.landmark_completer import MEL_BANDS, LandmarkCompleter
from dubber.render.image_tensors import to_model_range
from dubber.render.renderer_pipeline import FaceRenderer, training_scheduler
from dubber.training.checkpoints import load_checkpoint, save_checkpoint
from dubber.training.diffusion_loss import DiffusionLossConfig, diffusion_loss, step_generator
from dubber.training.landmark_data import ClipArrays, load_clips, reference_indices, speech_input
from dubber.training.landmark_loss import landmark_loss
from dubber.training.renderer_data import RenderClip, _colour, load_render_clips
from dubber.training.renderer_trainer import ema_copy, make_accelerator
from dubber.training.run_log import lr_factor, run_logger

log = get_logger("train")
N_POSE = 74


@dataclass(frozen=True)
class JointTrainConfig:
    batch_size: int = 8
    renderer_lr: float = 5e-5
    landmarks_lr: float = 5e-5
    landmark_weight: float = 1.0  # weight of the completer's L1 + velocity loss beside the diffusion loss
    velocity_weight: float = 1.0
    warmup_steps: int = 50
    max_steps: int = 2000
    ema_decay: float = 0.999
    max_frames_per_clip: int = 40
    min_gap: int = 5
    speaker_balance: float = 0.3
    freq_warp: float = 0.0  # VTLP of the completer's mel, as in `dub train landmarks --freq-warp`
    eval_every: int = 500
    eval_steps: int = 8
    checkpoint_minutes: float = 5.0
    seed: int = 0
    grad_clip: float = 1.0
    mixed_precision: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class JointResult:
    run: str
    step: int
    stopped: str
    minutes: float
    last_loss: float
    dev_before: dict = field(default_factory=dict)
    dev_after: dict = field(default_factory=dict)


class JointSampler:
    """Windows of T frames around a frame that has a crop: audio, pose and true points for the completer; the
    centre frame's crop and references (at least ``min_gap`` frames away) for the renderer."""

    def __init__(self, lm_clips: list[ClipArrays], render_clips: list[RenderClip], window: int, n_lm_refs: int,
                 n_refs: int, min_gap: int, balance: float, freq_warp: float = 0.0) -> None:  # fmt: skip
        self.lm = {c.clip_id: c for c in lm_clips}
        self.freq_warp = freq_warp
        self.render = [c for c in render_clips if c.clip_id in self.lm]
        self.window, self.n_lm_refs, self.n_refs, self.min_gap = window, n_lm_refs, n_refs, min_gap
        half = window // 2
        entries = []
        for ci, rc in enumerate(self.render):
            usable = self.lm[rc.clip_id].usable
            for i, f in enumerate(rc.frame_index):
                s = f - half
                if s >= 0 and s + window <= len(usable) and usable[s : s + window].all():
                    if len(rc.reference_candidates(i, min_gap)):
                        entries.append((ci, i))
        if not entries:
            raise ValueError("no joint training windows (clips with audio and crops)")
        self.entries = np.asarray(entries, np.int64)
        speakers = np.array([self.render[c].speaker for c in self.entries[:, 0]])
        _, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
        w = (counts.astype(np.float64) ** balance / counts)[inverse]
        self.p = w / w.sum()

    def __len__(self) -> int:
        return len(self.entries)

    def batch(self, size: int, seed: int, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, step, rank])
        picks = self.entries[rng.choice(len(self.entries), size, p=self.p)]
        t, half = self.window, self.window // 2
        mel, pose, content, lm_refs, images, points = [], [], [], [], [], []
        for ci, i in picks:
            rc = self.render[ci]
            c = self.lm[rc.clip_id]
            s = int(rc.frame_index[i]) - half
            mel.append(c.mel_windows[s : s + t].astype(np.float32))
            pose.append(c.pose[s : s + t])
            content.append(c.content[s : s + t])
            lm_refs.append(c.points[reference_indices(c, self.n_lm_refs, rng, slice(max(0, s - t), s + 2 * t))])
            refs = rng.choice(rc.reference_candidates(i, self.min_gap), self.n_refs)
            images.append(_colour(np.stack([rc.crops[i], *rc.crops[refs]]), rng))
            points.append(np.stack([rc.points[i], *rc.points[refs]]))
        images_t, points_t = to_model_range(np.stack(images)), torch.from_numpy(np.stack(points))
        mel_b = np.stack(mel)
        if self.freq_warp > 0:  # drawn last, so runs without it draw exactly the batches they did before
            mel_b[..., :MEL_BANDS] = random_warp(mel_b[..., :MEL_BANDS], rng, self.freq_warp)  # speech features stay
        return {
            "mel": torch.from_numpy(mel_b),
            "pose": torch.from_numpy(np.stack(pose)),
            "content": torch.from_numpy(np.stack(content)),
            "lm_refs": torch.from_numpy(np.stack(lm_refs)),
            "target": images_t[:, 0],
            "landmarks": points_t[:, 0],
            "refs": images_t[:, 1:],
            "ref_landmarks": points_t[:, 1:],
        }


def train_joint(
    data: str | Path,
    run: str | Path,
    landmarks: LandmarkCompleter,
    renderer: FaceRenderer,
    config: JointTrainConfig | None = None,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    device: str | None = None,
    log_fn: Callable[[dict], None] | None = None,
) -> JointResult:
    from diffusers.training_utils import EMAModel

    from dubber.evaluation.joint_eval import EndToEndDev

    cfg = config or JointTrainConfig()
    run = Path(run)
    if resume and (run / "config.json").is_file():
        cfg = JointTrainConfig(**json.loads((run / "config.json").read_text())["train"])
    elif not resume and (run / "checkpoint.json").exists():
        raise InputError(run, "holds a training run already; pass --resume to continue it or choose another --out")
    cache = PrepCache(data)
    accelerator = make_accelerator(device, cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    unet, completer = renderer.unet.float().train(), landmarks.float().train()
    size, window = int(unet.config.sample_size), completer.config.window
    speech = speech_input(completer.config)
    if speech is not None and not speech.with_mel and cfg.freq_warp:
        raise InputError(None, "--freq-warp acts on the mel; it does not apply to a speech-input landmark completer")
    lm_clips = load_clips(cache, "train", min_frames=window, speech=speech)
    render_clips = load_render_clips(cache, ("train",), size=size, max_frames=cfg.max_frames_per_clip,
                                     min_gap=cfg.min_gap)  # fmt: skip
    sampler = JointSampler(lm_clips, render_clips, window, completer.config.n_refs, int(unet.config.n_refs),
                           cfg.min_gap, cfg.speaker_balance, cfg.freq_warp)  # fmt: skip
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)  # starts at the trained renderer: no warm-up
    opt = torch.optim.AdamW(
        [{"params": unet.parameters(), "lr": cfg.renderer_lr, "base": cfg.renderer_lr},
         {"params": completer.parameters(), "lr": cfg.landmarks_lr, "base": cfg.landmarks_lr}],
        weight_decay=0.0,
    )  # fmt: skip
    unet, completer, opt = accelerator.prepare(unet, completer, opt)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    scheduler = training_scheduler(renderer.unet.config.prediction_type)
    raw_unet, raw_completer = accelerator.unwrap_model(unet), accelerator.unwrap_model(completer)
    dev = EndToEndDev.from_cache(cache, raw_completer.config.n_refs, int(raw_unet.config.n_refs), size, speech=speech)
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps({"train": cfg.to_dict(), "data": str(Path(data).resolve()),
                                                     "windows": len(sampler)}, indent=1))  # fmt: skip
    step, before_minutes, dev_before = 0, 0.0, {}
    state = load_checkpoint(accelerator, run) if resume else None
    if state is not None:
        step, before_minutes, dev_before = int(state["step"]), float(state["minutes"]), state.get("dev_before", {})
    elif accelerator.is_main_process:
        dev_before = dev.evaluate(raw_completer, FaceRenderer(raw_unet), steps=cfg.eval_steps, seed=cfg.seed)
    log_path = run / "log.jsonl"

    emit = run_logger(log_path, accelerator.is_main_process, log_fn)

    if state is None:
        emit({"step": 0, "eval": True, **dev_before})
    t0 = last_ckpt = time.perf_counter()
    minutes, stopped, loss_avg, dev_after = before_minutes, "max_steps", float("nan"), {}
    loss_cfg = DiffusionLossConfig(drop_landmarks=0.1)
    while step < cfg.max_steps:
        if max_minutes is not None and (time.perf_counter() - t0) / 60.0 >= max_minutes:
            stopped = "time_budget"
            break
        b = {k: v.to(accelerator.device) for k, v in sampler.batch(cfg.batch_size, cfg.seed, step,
                                                                     accelerator.process_index).items()}  # fmt: skip
        for g in opt.param_groups:
            g["lr"] = g["base"] * lr_factor(step, cfg.warmup_steps, cfg.max_steps)
        with accelerator.autocast():
            pred = completer(b["mel"], b["pose"], b["lm_refs"])  # (B, T, 57, 2)
            lm_loss, parts = landmark_loss(pred, b["content"], cfg.velocity_weight)
            centre = pred[:, window // 2]
            conditioning = torch.cat([b["landmarks"][:, :N_POSE], centre], dim=1)
            gen = step_generator(cfg.seed, step, accelerator.process_index)
            diff_loss, dparts = diffusion_loss(unet, scheduler, b, loss_cfg, gen, landmarks=conditioning)
            loss = diff_loss + cfg.landmark_weight * lm_loss
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
        opt.step()
        ema.step(raw_unet.parameters())
        step += 1
        value = float(loss.detach())
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        minutes = before_minutes + (time.perf_counter() - t0) / 60.0
        if step % 50 == 0 or step == 1:
            emit({"step": step, "loss": value, "loss_avg": loss_avg, "diffusion": float(diff_loss.detach()), **parts,
                  **dparts, "minutes": round(minutes, 3)})  # fmt: skip
        if accelerator.is_main_process and step % cfg.eval_every == 0:
            dev_after = dev.evaluate(raw_completer, FaceRenderer(ema_copy(raw_unet, ema)), steps=cfg.eval_steps,
                                     seed=cfg.seed)  # fmt: skip
            raw_completer.train()
            emit({"step": step, "eval": True, **dev_after, "minutes": round(minutes, 3)})
        if (time.perf_counter() - last_ckpt) / 60.0 >= cfg.checkpoint_minutes:
            save_checkpoint(accelerator, run, step, {"minutes": minutes, "dev_before": dev_before})
            last_ckpt = time.perf_counter()
    save_checkpoint(accelerator, run, step, {"minutes": minutes, "dev_before": dev_before})
    if accelerator.is_main_process:
        final = FaceRenderer(ema_copy(raw_unet, ema))
        if step % cfg.eval_every != 0 or not dev_after:
            dev_after = dev.evaluate(raw_completer, final, steps=cfg.eval_steps, seed=cfg.seed)
            emit({"step": step, "eval": True, **dev_after, "minutes": round(minutes, 3)})
        final.save_pretrained(run / "model" / "renderer")
        raw_completer.eval().save_pretrained(run / "model" / "landmarks", extra={"joint_steps": step})
    emit({"step": step, "done": stopped, "minutes": round(minutes, 3)})
    return JointResult(str(run), step, stopped, round(minutes, 2), loss_avg, dev_before, dev_after)
