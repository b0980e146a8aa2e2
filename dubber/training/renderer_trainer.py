"""``dub train renderer``: the diffusion renderer on a prepared cache with HF accelerate.

bf16 on a GPU, fp32 on a CPU; AdamW with warm-up and cosine decay; an EMA of the weights (the EMA is what gets
evaluated and shipped); checkpoints on a time budget with model, optimizer, EMA, RNG and step, so ``--resume``
continues exactly; every N steps a PNG grid and the dev metrics (lower-face PSNR/SSIM, LMD of the landmarks found
on the generated crop, the reference-paste baseline).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dubber.data.cache import PrepCache
from dubber.errors import InputError
from dubber.log import get_logger
from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.render.renderer_pipeline import FaceRenderer, training_scheduler
from dubber.training.checkpoints import load_checkpoint, save_checkpoint
from dubber.training.diffusion_loss import DiffusionLossConfig, diffusion_loss, step_generator
from dubber.training.renderer_data import RenderClip, RenderSampler, load_render_clips
from dubber.training.run_log import lr_factor, run_logger

log = get_logger("train")


@dataclass(frozen=True)
class RendererTrainConfig:
    model: str = "small"  # a named renderer config (tiny, small, base)
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    max_steps: int = 20_000  # the cosine schedule's length; --max-minutes may stop earlier
    ema_decay: float = 0.999
    outside_weight: float = 0.25
    drop_landmarks: float = 0.1
    min_snr_gamma: float = 5.0
    high_noise_share: float = 0.0  # share of samples at the top tenth of noise levels (DiffusionLossConfig)
    speaker_balance: float = 0.3
    max_frames_per_clip: int = 40
    min_gap: int = 5
    own_jitter: float = 0.2  # per-image jitter over the shared one (real frame-to-frame misalignment)
    splits: tuple[str, ...] = ("train", "video_only")
    eval_every: int = 500
    eval_steps: int = 8
    dev_per_clip: int = 3
    dev_clips_per_speaker: int = 4
    checkpoint_minutes: float = 5.0
    seed: int = 0
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none on CPU
    init_from: str | None = None  # start from these weights (a renderer folder or a .safetensors state dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def loss(self) -> DiffusionLossConfig:
        return DiffusionLossConfig(self.outside_weight, self.drop_landmarks, self.min_snr_gamma, self.high_noise_share)


@dataclass
class TrainResult:
    run: str
    step: int
    stopped: str
    minutes: float
    last_loss: float
    dev: dict = field(default_factory=dict)


def make_accelerator(device: str | None, mixed_precision: str):
    from accelerate import Accelerator

    cpu = device == "cpu" or not torch.cuda.is_available()
    precision = mixed_precision if mixed_precision != "auto" else ("no" if cpu else "bf16")
    return Accelerator(cpu=cpu, mixed_precision=precision)


def dev_clips_for_eval(cache: PrepCache, size: int, per_speaker: int, min_gap: int) -> list[RenderClip]:
    """A few dev clips per speaker (GRID s1 alone has 50): every dev speaker counts, none dominates."""
    return load_render_clips(cache, ("dev",), size=size, max_frames=60, min_gap=min_gap, per_speaker=per_speaker)


def face_backend():
    """The static-image face backend for measuring landmarks on generated crops (None without mediapipe)."""
    try:
        from dubber.face.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(static=True)
    except Exception as exc:  # noqa: BLE001 - evaluation degrades to image metrics only
        log.warning("no face backend for the landmark metric (%s)", exc)
        return None


class DevMonitor:
    """Dev metrics and PNG grids during training, on fixed samples."""

    def __init__(self, cache: PrepCache, run: Path, cfg: RendererTrainConfig, n_refs: int, size: int) -> None:
        from dubber.evaluation.renderer_eval import build_dev_samples

        self.run, self.cfg = run, cfg
        clips = dev_clips_for_eval(cache, size, cfg.dev_clips_per_speaker, cfg.min_gap)
        self.dev = build_dev_samples(clips, n_refs, cfg.dev_per_clip, cfg.min_gap) if clips else None
        self.backend = face_backend() if self.dev is not None else None

    def __call__(self, unet: RendererUNet, step: int, train_speakers: set[str]) -> dict:
        from dubber.evaluation.grids import save_grid
        from dubber.evaluation.renderer_eval import detect_content, evaluate_renderer

        if self.dev is None:
            return {}
        renderer = FaceRenderer(unet)
        report, generated = evaluate_renderer(
            renderer, self.dev, steps=self.cfg.eval_steps, seed=self.cfg.seed, backend=self.backend,
            train_speakers=train_speakers,
        )  # fmt: skip
        rows = min(8, len(self.dev))
        pick = [int(i) for i in torch.linspace(0, len(self.dev) - 1, rows).round().long()]
        found = detect_content(generated[pick], self.backend) if self.backend is not None else None
        save_grid(
            self.run / "grids" / f"step_{step:07d}.png", self.dev.targets[pick], generated[pick],
            self.dev.landmarks[pick], found,
        )  # fmt: skip
        out = {}
        for group, methods in report.groups.items():
            for method, s in methods.items():
                for k in ("psnr", "ssim", "lmd"):
                    out[f"{group}_{method}_{k}"] = s[k]
        return out


def train_renderer(
    data: str | Path,
    run: str | Path,
    config: RendererTrainConfig | None = None,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    device: str | None = None,
    log_fn: Callable[[dict], None] | None = None,
) -> TrainResult:
    from diffusers.training_utils import EMAModel

    cfg = config or RendererTrainConfig()
    run = Path(run)
    cache = PrepCache(data)
    config_path = run / "config.json"
    model_kwargs = renderer_config(cfg.model)
    if resume and config_path.is_file():
        saved = json.loads(config_path.read_text())
        cfg = RendererTrainConfig(**{**saved["train"], "splits": tuple(saved["train"]["splits"])})
        model_kwargs = saved["model"]
    elif not resume and (run / "checkpoint.json").exists():
        raise InputError(run, "holds a training run already; pass --resume to continue it or choose another --out")
    accelerator = make_accelerator(device, cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    size = model_kwargs["sample_size"]
    clips = load_render_clips(cache, cfg.splits, size=size, max_frames=cfg.max_frames_per_clip, min_gap=cfg.min_gap)
    if not clips:
        raise InputError(cache.root, f"no usable clips in splits {', '.join(cfg.splits)}")
    sampler = RenderSampler(
        clips, model_kwargs["n_refs"], min_gap=cfg.min_gap, balance=cfg.speaker_balance, own_jitter=cfg.own_jitter
    )
    unet = RendererUNet(**model_kwargs)
    if cfg.init_from and not (resume and (run / "checkpoint.json").exists()):
        load_initial_weights(unet, initial_weights(Path(cfg.init_from)), initial_config(Path(cfg.init_from)))
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=3 / 4)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    unet, opt = accelerator.prepare(unet, opt)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    scheduler = training_scheduler(model_kwargs.get("prediction_type", "sample"))
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        config_path.write_text(
            json.dumps(
                {
                    "train": cfg.to_dict(),
                    "model": model_kwargs,
                    "data": str(Path(data).resolve()),
                    "train_clips": len(clips),
                    "train_frames": len(sampler),
                    "train_speakers": sampler.speakers,
                },
                indent=1,
            )
        )
    monitor = DevMonitor(cache, run, cfg, model_kwargs["n_refs"], size) if accelerator.is_main_process else None
    step, elapsed_before = 0, 0.0
    if resume:
        state = load_checkpoint(accelerator, run)
        if state is not None:
            step, elapsed_before = int(state["step"]), float(state.get("minutes", 0.0))
            log.info("resumed %s at step %d", run, step)
    return _loop(accelerator, unet, ema, opt, scheduler, sampler, monitor, cfg, run, step, elapsed_before,
                 max_minutes, log_fn)  # fmt: skip


def initial_weights(path: Path) -> dict:
    """A state dict from a renderer folder (``unet/``), a UNet folder, or a ``.safetensors`` file."""
    from safetensors.torch import load_file

    unet_file = "diffusion_pytorch_model.safetensors"
    for candidate in (path / "unet" / unet_file, path / unet_file, path / "model.safetensors", path):
        if candidate.is_file():
            return load_file(candidate)
    raise InputError(path, "no renderer weights to start from")


def initial_config(path: Path) -> dict:
    """The UNet config of the starting weights: beside them, or the run's for a checkpoint ({} when none)."""
    for candidate in (path / "unet", path, *path.parents[:3]):
        file = candidate / "config.json"
        if file.is_file():
            saved = json.loads(file.read_text())
            return saved.get("model", saved)  # a run's config.json holds the model's under "model"
    return {}


def load_initial_weights(unet: RendererUNet, state: dict, source_config: dict | None = None) -> None:
    """Strict load, with two changes of design bridged so the new model starts from what the old one knew:

    - a ``conv_in`` with fewer input channels (a run from before the reference hint) is padded with zero weights:
      the new inputs start switched off and the model computes what it did;
    - a residual model (``hint_residual``) started from a whole-face one gets a zero ``conv_out``: it starts as the
      reference paste, and its pretrained features learn to correct that instead of redrawing the face.
    """
    w = state.get("conv_in.weight")
    own = unet.conv_in.weight
    if w is not None and w.shape[1] < own.shape[1]:
        state = dict(state)
        state["conv_in.weight"] = torch.cat([w, torch.zeros(w.shape[0], own.shape[1] - w.shape[1], *w.shape[2:])], 1)
    unet.load_state_dict(state)
    if unet.config.hint_residual and not (source_config or {}).get("hint_residual", False):
        with torch.no_grad():
            unet.conv_out.weight.zero_()
            unet.conv_out.bias.zero_()


def ema_copy(unet: RendererUNet, ema) -> RendererUNet:
    model = copy.deepcopy(unet).float()
    ema.copy_to(model.parameters())
    return model.eval()


def _loop(accelerator, unet, ema, opt, scheduler, sampler, monitor, cfg, run, step, elapsed_before, max_minutes,
          log_fn) -> TrainResult:  # fmt: skip
    log_path = run / "log.jsonl"

    emit = run_logger(log_path, accelerator.is_main_process, log_fn)

    unwrapped = accelerator.unwrap_model(unet)
    t0 = last_ckpt = time.perf_counter()
    minutes, stopped, loss_avg, dev = elapsed_before, "max_steps", float("nan"), {}
    unet.train()
    while step < cfg.max_steps:
        if max_minutes is not None and (time.perf_counter() - t0) / 60.0 >= max_minutes:
            stopped = "time_budget"
            break
        batch = sampler.batch(cfg.batch_size, cfg.seed, step, accelerator.process_index)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(step, cfg.warmup_steps, cfg.max_steps)
        gen = step_generator(cfg.seed, step, accelerator.process_index)
        with accelerator.autocast():
            loss, parts = diffusion_loss(unet, scheduler, batch, cfg.loss, gen)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        opt.step()
        ema.step(unwrapped.parameters())
        step += 1
        value = float(loss.detach())
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        minutes = elapsed_before + (time.perf_counter() - t0) / 60.0
        if step % 50 == 0 or step == 1:
            emit({"step": step, "loss": value, "loss_avg": loss_avg, **parts, "lr": opt.param_groups[0]["lr"],
                  "ema_decay": ema.cur_decay_value, "minutes": round(minutes, 3)})  # fmt: skip
        if monitor is not None and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            dev = monitor(ema_copy(unwrapped, ema), step, set(sampler.speakers))
            emit({"step": step, "eval": True, **dev, "minutes": round(minutes, 3)})
        if (time.perf_counter() - last_ckpt) / 60.0 >= cfg.checkpoint_minutes:
            save_checkpoint(accelerator, run, step, {"minutes": minutes})
            last_ckpt = time.perf_counter()
    save_checkpoint(accelerator, run, step, {"minutes": minutes})
    if accelerator.is_main_process:
        FaceRenderer(ema_copy(unwrapped, ema)).save_pretrained(run / "model")
        (run / "model" / "training.json").write_text(
            json.dumps({"trained_steps": step, "train_minutes": round(minutes, 2), "ema_decay": cfg.ema_decay})
        )
    emit({"step": step, "done": stopped, "minutes": round(minutes, 3)})
    return TrainResult(str(run), step, stopped, round(minutes, 2), loss_avg, dev)
