"""``dub train renderer``: the diffusion renderer on a prepared cache (the shared loop: ``loop.py``).

bf16 on a GPU, fp32 on a CPU; AdamW with warm-up and cosine decay; an EMA of the weights (the EMA is what gets
evaluated and shipped). Dev metrics and PNG grids come from a monitor the caller passes (``dub train renderer``
passes ``dubber.evaluation.renderer_monitor``): training never imports evaluation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dubber.data.cache import PrepCache, held_out_speakers
from dubber.data.render_clips import load_render_clips
from dubber.errors import InputError
from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.render.renderer_pipeline import FaceRenderer, training_scheduler
from dubber.training.diffusion_loss import DiffusionLossConfig, diffusion_loss, step_generator
from dubber.training.loop import LoopSettings, TrainResult, make_accelerator, train_loop, write_run_config
from dubber.training.renderer_data import RenderSampler

# (renderer, step, train speakers) -> dev metrics; made by the caller from (cache, run, config, n_refs, crop size).
DevMonitor = Callable[[RendererUNet, int, set], dict]
MonitorFactory = Callable[[PrepCache, Path, "RendererTrainConfig", int, int], DevMonitor]


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
    hint_warp: bool = False  # the hint carried onto the target's landmarks (renderer.json hint_warp), as at inference
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
    hold_out: str | None = None  # a CSV with a speaker column (benchmarks/split_long_clips.csv): never trained on

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", tuple(self.splits))  # a recipe or a saved config gives a list
        renderer_config(self.model)  # an unknown size is refused before a run folder exists
        if self.hold_out:  # a saved run resumes from any folder
            object.__setattr__(self, "hold_out", str(Path(self.hold_out).resolve()))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def loss(self) -> DiffusionLossConfig:
        return DiffusionLossConfig(
            self.outside_weight, self.drop_landmarks, self.min_snr_gamma, self.high_noise_share, self.hint_warp
        )


class RendererTask:
    """The renderer on (target, references) samples, with an EMA of its weights."""

    evaluate_first = False

    def __init__(self, unet, ema, scheduler, sampler: RenderSampler, cfg: RendererTrainConfig, monitor, accelerator):
        self.unet, self.ema, self.scheduler, self.sampler, self.cfg = unet, ema, scheduler, sampler, cfg
        self.monitor, self.unwrapped = monitor, accelerator.unwrap_model(unet)

    def loss(self, step: int, rank: int, device: torch.device) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        batch = {k: v.to(device) for k, v in self.sampler.batch(cfg.batch_size, cfg.seed, step, rank).items()}
        return diffusion_loss(self.unet, self.scheduler, batch, cfg.loss, step_generator(cfg.seed, step, rank))

    def after_step(self) -> dict:
        self.ema.step(self.unwrapped.parameters())
        return {"ema_decay": self.ema.cur_decay_value}

    def evaluate(self, step: int) -> dict:
        if self.monitor is None:
            return {}
        return self.monitor(ema_copy(self.unwrapped, self.ema), step, set(self.sampler.speakers))

    def save(self, folder: Path, extra: dict) -> None:
        FaceRenderer(ema_copy(self.unwrapped, self.ema), hint_warp=self.cfg.hint_warp).save_pretrained(folder)
        (folder / "training.json").write_text(json.dumps({**extra, "ema_decay": self.cfg.ema_decay}))


def train_renderer(
    data: str | Path,
    run: str | Path,
    config: RendererTrainConfig | None = None,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    device: str | None = None,
    log_fn: Callable[[dict], None] | None = None,
    make_monitor: MonitorFactory | None = None,
) -> TrainResult:
    """``make_monitor``: builds the dev evaluation run every ``eval_every`` steps (none without it)."""
    from diffusers.training_utils import EMAModel

    cfg = config or RendererTrainConfig()
    run = Path(run)
    cache = PrepCache(data)
    config_path = run / "config.json"
    model_kwargs = renderer_config(cfg.model)
    if resume and config_path.is_file():
        saved = json.loads(config_path.read_text())
        cfg = RendererTrainConfig(**saved["train"])
        model_kwargs = saved["model"]
    elif not resume and (run / "checkpoint.json").exists():
        raise InputError(run, "holds a training run already; pass --resume to continue it or choose another --out")
    accelerator = make_accelerator(device, cfg.mixed_precision)
    torch.manual_seed(cfg.seed)
    size = model_kwargs["sample_size"]
    held_out = held_out_speakers(cfg.hold_out)
    clips = load_render_clips(
        cache.without(held_out), cfg.splits, size=size, max_frames=cfg.max_frames_per_clip, min_gap=cfg.min_gap
    )
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
    write_run_config(
        run,
        accelerator.is_main_process,
        {
            "train": cfg.to_dict(),
            "model": model_kwargs,
            "data": str(Path(data).resolve()),
            "train_clips": len(clips),
            "train_frames": len(sampler),
            "train_speakers": sampler.speakers,
            "held_out_speakers": sorted(held_out),
        },
    )
    monitor = None
    if make_monitor is not None and accelerator.is_main_process:
        monitor = make_monitor(cache, run, cfg, model_kwargs["n_refs"], size)
    scheduler = training_scheduler(model_kwargs.get("prediction_type", "sample"))
    unet.train()
    task = RendererTask(unet, ema, scheduler, sampler, cfg, monitor, accelerator)
    settings = LoopSettings(cfg.max_steps, cfg.warmup_steps, cfg.eval_every, cfg.checkpoint_minutes, cfg.grad_clip)
    return train_loop(accelerator, task, opt, settings, run, resume=resume, max_minutes=max_minutes, log_fn=log_fn)


def initial_weights(path: Path) -> dict:
    """A state dict from a renderer folder (``unet/``), a UNet folder, or a ``.safetensors`` file; a folder's
    weights may be in shards (``FaceRenderer.save_pretrained(max_shard_mib=...)``)."""
    from safetensors.torch import load_file

    from dubber.models.model_folder import unet_weight_files

    unet_file = "diffusion_pytorch_model.safetensors"
    for candidate in (path / "unet" / unet_file, path / unet_file, path / "model.safetensors", path):
        files = unet_weight_files(candidate)
        if all(f.is_file() for f in files):
            return {k: v for f in files for k, v in load_file(f).items()}
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
    """A float32 copy of ``unet`` holding the EMA weights, for evaluating and saving."""
    model = copy.deepcopy(unet).float()
    ema.copy_to(model.parameters())
    return model.eval()
