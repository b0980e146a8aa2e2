"""``dub train landmarks``: the landmark completer on a prepared cache (the shared loop: ``loop.py``).

AdamW, L1 + velocity loss (``landmark_loss``), a quick dev LMD every N steps and the model at its lowest one
(``keep_best``). The recipes that made the shipped members are ``recipes/landmarks-*.toml``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from dubber.audio.windows import SPEECH_WINDOW_STEPS
from dubber.data.cache import PrepCache, held_out_speakers
from dubber.data.clip_arrays import ClipArrays, load_clips, reference_indices, speech_input
from dubber.errors import InputError
from dubber.face.landmarks import N_POSE
from dubber.log import get_logger
from dubber.models.landmark_completer import AUDIO_INPUTS, BASES, LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.landmark_loss import landmark_loss
from dubber.models.landmark_sequence import predict_sequence
from dubber.models.speech_encoder import DEFAULT_SPEECH_ENCODER, DEFAULT_SPEECH_LAYER
from dubber.training.landmark_sampler import WindowSampler
from dubber.training.loop import LoopSettings, TrainResult, make_accelerator, train_loop, write_run_config

log = get_logger("train")
KEEP_BEST = ("dev_lmd", "dev_lmd_unseen")


@dataclass(frozen=True)
class LandmarkTrainConfig:
    model: str = "small"  # a named LandmarkCompleterConfig
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20_000  # the cosine schedule's length; --max-minutes may stop earlier
    speaker_balance: float = 0.15  # sample speakers in proportion to frames ** this (0: uniform, 1: by frames)
    pose_swap: float = 0.3  # share of samples whose pose comes from another moment of the clip
    freq_warp: float = 0.0  # VTLP: mel frequency axis scaled by a factor in [1/(1+w), 1+w] (other voices)
    init_from: str | None = None  # a completer folder to fine-tune (its config replaces ``model`` and ``base``)
    base: str | None = None  # what the offsets start from (LandmarkCompleterConfig.base), replacing the named config's
    audio: str = "mel"  # the completer's audio input: "mel", "speech" (a pretrained speech encoder's) or "mel+speech"
    speech_encoder: str = DEFAULT_SPEECH_ENCODER  # with speech: the encoder's name in the weights folder's speech/
    speech_layer: int = DEFAULT_SPEECH_LAYER  # ... and the layer whose features the completer reads (0: output)
    voice_warp: float = 0.0  # VTLP of the speech encoder's input: train clips' features also in other voices
    voice_variants: int = 4  # ... that many per clip (factors in [1/(1+w), 1+w]); windows draw among them and the own
    eval_every: int = 500
    hold_out: str | None = None  # a CSV with a speaker column (benchmarks/split_long_clips.csv): never trained on
    keep_best: str | None = None  # a dev metric (KEEP_BEST): the model at its lowest value is kept in RUN/best/
    checkpoint_minutes: float = 5.0
    seed: int = 0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        # Caught here, not at the first step of a run that made its folder.
        if self.audio not in AUDIO_INPUTS:
            raise ValueError(f"unknown audio input {self.audio!r}; choose from {', '.join(AUDIO_INPUTS)}")
        if self.base is not None and self.base not in BASES:
            raise ValueError(f"unknown base {self.base!r}; choose from {', '.join(BASES)}")
        if self.audio == "speech" and self.freq_warp:  # the speech encoder reads its own log-mel of the sound
            raise ValueError("freq_warp acts on the mel; it does not apply to audio 'speech' (use voice_warp)")
        if self.voice_warp and self.audio != "speech":
            raise ValueError("voice_warp makes variants of the speech features; it needs audio 'speech'")
        if self.voice_warp and abs(self.voice_warp * 100 - round(self.voice_warp * 100)) > 1e-6:
            # The cache files variants by whole percent (vtlp15): 0.155 and 0.16 would share files drawn for one.
            raise ValueError(f"voice_warp {self.voice_warp}: give a whole percent (such as 0.15)")
        if self.voice_warp and self.voice_variants < 1:
            raise ValueError("voice_variants must be at least 1 with voice_warp")
        if self.keep_best is not None and self.keep_best not in KEEP_BEST:
            raise ValueError(f"unknown dev metric {self.keep_best!r}; choose from {', '.join(KEEP_BEST)}")
        if self.hold_out:  # a saved run resumes from any folder
            object.__setattr__(self, "hold_out", str(Path(self.hold_out).resolve()))
        if self.init_from and self.base is not None:  # a fine-tuned model keeps what it was trained with
            raise ValueError("base cannot change the base of init_from weights; give one or the other")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LandmarkTrainConfig:
        """A run's saved config (settings measured dead and since removed are left out)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def completer_config(cfg: LandmarkTrainConfig) -> LandmarkCompleterConfig:
    """The completer a fresh run trains: the named size, its base, and the speech encoder it reads."""
    model_cfg = LandmarkCompleterConfig.named(cfg.model)
    if cfg.base is not None:
        model_cfg = replace(model_cfg, base=cfg.base)
    if cfg.audio == "mel":
        return model_cfg
    from dubber.weights import load_speech_encoder

    encoder = load_speech_encoder(cfg.speech_encoder)
    if not 0 <= cfg.speech_layer <= encoder.config.n_layers:
        raise InputError(None, f"speech_layer {cfg.speech_layer}: the encoder has {encoder.config.n_layers} blocks")
    d = encoder.config.d_model
    return model_cfg.with_speech_input(
        encoder.config.source, d, SPEECH_WINDOW_STEPS, cfg.audio == "mel+speech", cfg.speech_layer
    )


def _prepare_speech_features(cache: PrepCache, model_cfg: LandmarkCompleterConfig, cfg: LandmarkTrainConfig) -> None:
    """For a completer that reads speech features: the cache's missing ones, and its voice variants."""
    from dubber.data.speech_cache import add_speech_features, add_voice_variants
    from dubber.weights import load_speech_encoder

    encoder = load_speech_encoder(model_cfg.speech_encoder)
    layer = model_cfg.speech_layer
    records = [r for split in ("train", "dev") for r in cache.records(split, with_audio=True)]
    made = add_speech_features(cache.root, records, encoder, layer=layer)
    if made:
        log.info("made %s speech features (layer %d) for %d clips", encoder.config.source, layer, made)
    if cfg.voice_warp:

        def progress(done: int, total: int) -> None:  # the first run makes them all: minutes on a CPU, so say so
            if done == 1 or done % 200 == 0 or done == total:
                log.info("voice variants of the train clips' speech features: %d of %d", done, total)

        train = cache.records("train", with_audio=True)
        made = add_voice_variants(
            cache.root, train, encoder, layer=layer, amount=cfg.voice_warp, count=cfg.voice_variants, progress=progress
        )
        if made:
            log.info("made %d voice variants of the train clips' speech features", made)


@torch.no_grad()
def quick_dev_lmd(model: LandmarkCompleter, clips: list[ClipArrays], train_speakers: set[str] | None = None) -> dict:
    """LMD on dev clips from non-overlapping windows, all and on unseen speakers (the full evaluation with its
    baselines is ``dub eval landmarks``)."""
    was_training = model.training
    model.eval()
    errs, base, unseen = [], [], []
    for c in clips:
        refs = c.points[reference_indices(c, model.config.n_refs, None)]
        pred = predict_sequence(model, c.audio_windows.astype(np.float32), c.pose, refs, stride=model.config.window)
        u = c.usable
        errs.append(np.linalg.norm(pred[u] - c.content[u], axis=-1).mean())
        base.append(np.linalg.norm(refs[:, N_POSE:].mean(0)[None] - c.content[u], axis=-1).mean())
        if train_speakers is not None and c.speaker not in train_speakers:
            unseen.append((errs[-1], base[-1]))
    model.train(was_training)
    out = {"dev_lmd": float(np.mean(errs)), "dev_lmd_ref_mean": float(np.mean(base))}
    if unseen:
        out["dev_lmd_unseen"] = float(np.mean([e for e, _ in unseen]))
        out["dev_lmd_unseen_ref_mean"] = float(np.mean([b for _, b in unseen]))
    return out


class LandmarkTask:
    """The completer on training windows."""

    evaluate_first = False

    def __init__(
        self,
        model,
        unwrapped: LandmarkCompleter,
        sampler: WindowSampler,
        dev_clips: list[ClipArrays],
        cfg: LandmarkTrainConfig,
    ) -> None:
        self.model, self.unwrapped, self.sampler, self.dev_clips, self.cfg = model, unwrapped, sampler, dev_clips, cfg

    def loss(self, step: int, rank: int, device: torch.device) -> tuple[torch.Tensor, dict]:
        batch = {k: v.to(device) for k, v in self.sampler.batch(self.cfg.batch_size, self.cfg.seed, step, rank).items()}
        return landmark_loss(self.model(batch["audio"], batch["pose"], batch["refs"]), batch["target"])

    def after_step(self) -> dict:
        return {}

    def evaluate(self, step: int) -> dict:
        return quick_dev_lmd(self.unwrapped, self.dev_clips, set(self.sampler.speakers)) if self.dev_clips else {}

    def save(self, folder: Path, extra: dict) -> None:
        self.unwrapped.save_pretrained(folder, extra=extra)


def train_landmarks(
    data: str | Path,
    run: str | Path,
    config: LandmarkTrainConfig | None = None,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    device: str | None = None,
    log_fn: Callable[[dict], None] | None = None,
) -> TrainResult:
    cfg = config or LandmarkTrainConfig()
    run = Path(run)
    cache = PrepCache(data)
    config_path = run / "config.json"
    resuming = resume and (run / "checkpoint.json").exists()
    if resume and config_path.is_file():
        saved = json.loads(config_path.read_text())
        cfg = LandmarkTrainConfig.from_dict(saved["train"])
        model_cfg = LandmarkCompleterConfig.from_dict(saved["model"])
    elif not resume and (run / "checkpoint.json").exists():
        raise InputError(run, "holds a training run already; pass --resume to continue it or choose another --out")
    else:
        model_cfg = None
    accelerator = make_accelerator(device, "no")
    torch.manual_seed(cfg.seed)
    start = None
    if cfg.init_from and not resuming:
        start = LandmarkCompleter.from_pretrained(cfg.init_from)
        model_cfg = start.config
    elif model_cfg is None:
        model_cfg = completer_config(cfg)
    if model_cfg.audio_input != "mel":
        _prepare_speech_features(cache, model_cfg, cfg)
    speech = speech_input(model_cfg)
    voices = (cfg.voice_warp, cfg.voice_variants) if cfg.voice_warp else None
    held_out = held_out_speakers(cfg.hold_out)
    train_clips = load_clips(
        cache.without(held_out), "train", min_frames=model_cfg.window, speech=speech, voices=voices
    )
    if not train_clips:
        raise InputError(cache.root, "no train clips with audio in the cache")
    dev_clips = load_clips(cache, "dev", min_frames=model_cfg.window, speech=speech)
    sampler = WindowSampler(
        train_clips,
        model_cfg.window,
        model_cfg.n_refs,
        balance=cfg.speaker_balance,
        pose_swap=cfg.pose_swap,
        freq_warp=cfg.freq_warp,
    )
    if cfg.keep_best and not dev_clips:
        raise InputError(cache.root, f"no dev clips to keep the best {cfg.keep_best} by")
    if cfg.keep_best == "dev_lmd_unseen" and all(c.speaker in sampler.speakers for c in dev_clips):
        raise InputError(cache.root, "every dev speaker is also a train speaker: there is no dev_lmd_unseen to keep")
    model = start if start is not None else LandmarkCompleter(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt = accelerator.prepare(model, opt)
    write_run_config(
        run,
        accelerator.is_main_process,
        {
            "train": cfg.to_dict(),
            "model": model_cfg.to_dict(),
            "data": str(Path(data).resolve()),
            "train_clips": len(train_clips),
            "train_windows": len(sampler),
            "train_speakers": sampler.speakers,
            "held_out_speakers": sorted(held_out),
            "dev_clips": len(dev_clips),
        },
    )
    model.train()
    task = LandmarkTask(model, accelerator.unwrap_model(model), sampler, dev_clips, cfg)
    settings = LoopSettings(
        cfg.max_steps, cfg.warmup_steps, cfg.eval_every, cfg.checkpoint_minutes, cfg.grad_clip, cfg.keep_best
    )
    return train_loop(accelerator, task, opt, settings, run, resume=resume, max_minutes=max_minutes, log_fn=log_fn)
