"""``dub train joint``: end-to-end fine-tuning, the landmark completer's output feeding the renderer (the shared
loop: ``loop.py``).

The completer predicts lip and jaw points from the audio for a window of T frames; the renderer draws the window's
centre frame conditioned on those points (the pose points come from the video, as at inference). Because the
landmarks enter the renderer as numbers, the diffusion loss reaches the completer through them; the completer's own
L1 + velocity loss is kept so it stays anchored to the true landmarks. Both start from trained weights. The dev
evaluation (before the first step and every N steps) comes from the caller (``dubber.evaluation.joint_eval``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from dubber.audio.augment import random_warp
from dubber.data.cache import PrepCache, held_out_speakers
from dubber.data.clip_arrays import ClipArrays, load_clips, reference_indices, speech_input
from dubber.data.render_clips import RenderClip, load_render_clips
from dubber.errors import InputError
from dubber.face.landmarks import N_POSE
from dubber.models.landmark_completer import MEL_BANDS, LandmarkCompleter
from dubber.models.landmark_loss import landmark_loss
from dubber.render.image_tensors import to_model_range
from dubber.render.renderer_pipeline import FaceRenderer, training_scheduler
from dubber.training.diffusion_loss import DiffusionLossConfig, diffusion_loss, step_generator
from dubber.training.loop import LoopSettings, TrainResult, make_accelerator, train_loop, write_run_config
from dubber.training.renderer_data import colour_jitter
from dubber.training.renderer_trainer import ema_copy


class DevEvaluation(Protocol):
    """End-to-end dev metrics of a completer and a renderer (``dubber.evaluation.joint_eval.EndToEndDev``)."""

    def evaluate(self, completer: LandmarkCompleter, renderer: FaceRenderer, *, steps: int, seed: int) -> dict: ...


# (cache, completer references, renderer references, crop size, speech=the completer's speech input) -> the above
DevFactory = Callable[..., DevEvaluation]


@dataclass(frozen=True)
class JointTrainConfig:
    batch_size: int = 8
    renderer_lr: float = 5e-5
    landmarks_lr: float = 5e-5
    landmark_weight: float = 1.0  # weight of the completer's L1 + velocity loss beside the diffusion loss
    warmup_steps: int = 50
    max_steps: int = 2000
    ema_decay: float = 0.999
    max_frames_per_clip: int = 40
    min_gap: int = 5
    speaker_balance: float = 0.3
    freq_warp: float = 0.0  # VTLP of the completer's mel, as in `dub train landmarks`
    eval_every: int = 500
    eval_steps: int = 8
    checkpoint_minutes: float = 5.0
    seed: int = 0
    grad_clip: float = 1.0
    mixed_precision: str = "auto"
    hold_out: str | None = None  # a CSV with a speaker column (benchmarks/split_long_clips.csv): never trained on

    def __post_init__(self) -> None:
        if self.hold_out:  # a saved run resumes from any folder
            object.__setattr__(self, "hold_out", str(Path(self.hold_out).resolve()))

    def to_dict(self) -> dict:
        return asdict(self)


class JointSampler:
    """Windows of T frames around a frame that has a crop: audio, pose and true points for the completer; the
    centre frame's crop and references (at least ``min_gap`` frames away) for the renderer."""

    def __init__(
        self,
        lm_clips: list[ClipArrays],
        render_clips: list[RenderClip],
        window: int,
        n_lm_refs: int,
        n_refs: int,
        min_gap: int,
        balance: float,
        freq_warp: float = 0.0,
    ) -> None:
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
        audio, pose, content, lm_refs, images, points = [], [], [], [], [], []
        for ci, i in picks:
            rc = self.render[ci]
            c = self.lm[rc.clip_id]
            s = int(rc.frame_index[i]) - half
            audio.append(c.audio_windows[s : s + t].astype(np.float32))
            pose.append(c.pose[s : s + t])
            content.append(c.content[s : s + t])
            lm_refs.append(c.points[reference_indices(c, self.n_lm_refs, rng, slice(max(0, s - t), s + 2 * t))])
            refs = rng.choice(rc.reference_candidates(i, self.min_gap), self.n_refs)
            images.append(colour_jitter(np.stack([rc.crops[i], *rc.crops[refs]]), rng))
            points.append(np.stack([rc.points[i], *rc.points[refs]]))
        images_t, points_t = to_model_range(np.stack(images)), torch.from_numpy(np.stack(points))
        audio_b = np.stack(audio)
        if self.freq_warp > 0:  # drawn last, so runs without it draw exactly the batches they did before
            audio_b[..., :MEL_BANDS] = random_warp(audio_b[..., :MEL_BANDS], rng, self.freq_warp)  # speech stays
        return {
            "audio": torch.from_numpy(audio_b),
            "pose": torch.from_numpy(np.stack(pose)),
            "content": torch.from_numpy(np.stack(content)),
            "lm_refs": torch.from_numpy(np.stack(lm_refs)),
            "target": images_t[:, 0],
            "landmarks": points_t[:, 0],
            "refs": images_t[:, 1:],
            "ref_landmarks": points_t[:, 1:],
        }


class JointTask:
    """The completer and the renderer together; an EMA of the renderer's weights."""

    evaluate_first = True

    def __init__(
        self, completer, unet, ema, scheduler, sampler: JointSampler, cfg: JointTrainConfig, dev, accelerator
    ) -> None:
        self.completer, self.unet, self.ema, self.scheduler, self.sampler = completer, unet, ema, scheduler, sampler
        self.cfg, self.dev = cfg, dev
        self.raw_completer, self.raw_unet = accelerator.unwrap_model(completer), accelerator.unwrap_model(unet)
        self.loss_config = DiffusionLossConfig(drop_landmarks=0.1)

    def loss(self, step: int, rank: int, device: torch.device) -> tuple[torch.Tensor, dict]:
        b = {k: v.to(device) for k, v in self.sampler.batch(self.cfg.batch_size, self.cfg.seed, step, rank).items()}
        pred = self.completer(b["audio"], b["pose"], b["lm_refs"])  # (B, T, 57, 2)
        lm_loss, parts = landmark_loss(pred, b["content"])
        centre = pred[:, self.sampler.window // 2]
        conditioning = torch.cat([b["landmarks"][:, :N_POSE], centre], dim=1)
        gen = step_generator(self.cfg.seed, step, rank)
        diff_loss, dparts = diffusion_loss(self.unet, self.scheduler, b, self.loss_config, gen, landmarks=conditioning)
        return diff_loss + self.cfg.landmark_weight * lm_loss, {
            "diffusion": float(diff_loss.detach()),
            **parts,
            **dparts,
        }

    def after_step(self) -> dict:
        self.ema.step(self.raw_unet.parameters())
        return {}

    def evaluate(self, step: int) -> dict:
        if self.dev is None:
            return {}
        renderer = FaceRenderer(ema_copy(self.raw_unet, self.ema) if step else self.raw_unet)
        out = self.dev.evaluate(self.raw_completer, renderer, steps=self.cfg.eval_steps, seed=self.cfg.seed)
        self.raw_completer.train()
        self.raw_unet.train()
        return out

    def save(self, folder: Path, extra: dict) -> None:
        FaceRenderer(ema_copy(self.raw_unet, self.ema)).save_pretrained(folder / "renderer")
        self.raw_completer.eval().save_pretrained(folder / "landmarks", extra={"joint_steps": extra["trained_steps"]})
        self.raw_completer.train()


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
    make_dev: DevFactory | None = None,
) -> TrainResult:
    """``make_dev(cache, completer_refs, renderer_refs, crop_size, speech=...)``: the end-to-end dev evaluation
    (``EndToEndDev.from_cache``), run before the first step and every ``eval_every`` steps."""
    from diffusers.training_utils import EMAModel

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
    train_cache = cache.without(held_out_speakers(cfg.hold_out))
    lm_clips = load_clips(train_cache, "train", min_frames=window, speech=speech)
    render_clips = load_render_clips(
        train_cache, ("train",), size=size, max_frames=cfg.max_frames_per_clip, min_gap=cfg.min_gap
    )
    sampler = JointSampler(
        lm_clips,
        render_clips,
        window,
        completer.config.n_refs,
        int(unet.config.n_refs),
        cfg.min_gap,
        cfg.speaker_balance,
        cfg.freq_warp,
    )
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)  # starts at the trained renderer: no warm-up
    groups = [{"params": unet.parameters(), "lr": cfg.renderer_lr}]
    opt = torch.optim.AdamW([*groups, {"params": completer.parameters(), "lr": cfg.landmarks_lr}], weight_decay=0.0)
    unet, completer, opt = accelerator.prepare(unet, completer, opt)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    scheduler = training_scheduler(renderer.unet.config.prediction_type)
    dev = None
    if make_dev is not None and accelerator.is_main_process:
        dev = make_dev(cache, landmarks.config.n_refs, int(renderer.unet.config.n_refs), size, speech=speech)
    write_run_config(
        run,
        accelerator.is_main_process,
        {"train": cfg.to_dict(), "data": str(Path(data).resolve()), "windows": len(sampler)},
    )
    task = JointTask(completer, unet, ema, scheduler, sampler, cfg, dev, accelerator)
    settings = LoopSettings(cfg.max_steps, cfg.warmup_steps, cfg.eval_every, cfg.checkpoint_minutes, cfg.grad_clip)
    return train_loop(accelerator, task, opt, settings, run, resume=resume, max_minutes=max_minutes, log_fn=log_fn)
