"""``dub train landmarks``: train the landmark completer on a prepared cache with HF accelerate.

One CPU works; ``accelerate launch -m dubber train landmarks ...`` scales to many GPUs (each process draws its own
batches, gradients are averaged). AdamW, L1 + velocity loss, dev evaluation every N steps, checkpoints on a time
budget holding model, optimizer, RNG and step, ``--resume``, JSON-lines logs, ``--keep-best`` (the model at its
lowest dev error, beside the last). Batches are a pure function of (seed, step, process), so a resumed run
continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from dubber.audio.windows import SPEECH_WINDOW_STEPS
from dubber.data.cache import PrepCache
from dubber.errors import InputError
from dubber.log import get_logger
from dubber.models.landmark_completer import AUDIO_INPUTS, SPEECH_NORMS, LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.speech_encoder import DEFAULT_SPEECH_ENCODER, DEFAULT_SPEECH_LAYER
from dubber.training.checkpoints import load_checkpoint, save_best_model, save_checkpoint
from dubber.training.landmark_data import (
    SpeechInput,
    WindowSampler,
    load_clips,
    read_audio_delays,
    reference_indices,
    speech_input,
)
from dubber.training.landmark_loss import POINT_LOSSES, landmark_loss
from dubber.training.run_log import lr_factor, run_logger

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
    velocity_weight: float = 1.0
    point_loss: str = "l1"  # "l1" or "l2" (squared error, scaled to L1's gradient at a 0.01 error)
    opening_weight: float = 0.0  # extra L1 on the mouth opening (inner-lip gap / width), the most visible sync cue
    speaker_balance: float = 0.15  # sample speakers in proportion to frames ** this (0: uniform, 1: by frames)
    pose_swap: float = 0.3  # share of samples whose pose comes from another moment of the clip
    freq_warp: float = 0.0  # VTLP: mel frequency axis scaled by a factor in [1/(1+w), 1+w] (other voices)
    init_from: str | None = None  # a completer folder to fine-tune (its config replaces ``model``)
    time_stretch: float = 0.0  # speaking rate: windows resampled at a rate in [1/(1+s), 1+s] (other tempos)
    audio_dropout: float = 0.0  # input dropout on the audio windows' values
    window: int | None = None  # frames per window (T), replacing the named config's
    base: str | None = None  # what the offsets start from (LandmarkCompleterConfig.base), replacing the named config's
    sync_offsets: str | None = None  # a tools/sync_offsets.py report: train clips with a clear offset are re-synced
    audio: str = "mel"  # the completer's audio input: "mel", or "speech" (a pretrained speech encoder's features)
    speech_encoder: str = DEFAULT_SPEECH_ENCODER  # with audio "speech": the encoder's name in weights/speech/
    speech_encoder_path: str | None = None  # ... or a folder holding it (tests use a tiny random one)
    speech_layer: int = DEFAULT_SPEECH_LAYER  # ... and the layer whose features the completer reads (0: output)
    speech_steps: int = SPEECH_WINDOW_STEPS  # ... and how many of its 20 ms steps each frame's window holds
    speech_norm: str = "none"  # ... and how they are normalised (LandmarkCompleterConfig.speech_norm)
    voice_warp: float = 0.0  # VTLP of the speech encoder's input: train clips' features also in other voices
    voice_variants: int = 4  # ... that many per clip (factors in [1/(1+w), 1+w]); windows draw among them and the own
    voice_channel: bool = False  # ... each also heard through a random recording channel (dubber.audio.channel)
    eval_every: int = 500
    keep_best: str | None = None  # a dev metric (KEEP_BEST): the model at its lowest value is kept in RUN/best/
    checkpoint_minutes: float = 5.0
    seed: int = 0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        # Caught here, not at the first step of a run that made its folder.
        if self.point_loss not in POINT_LOSSES:
            raise ValueError(f"unknown point loss {self.point_loss!r}; choose from {', '.join(POINT_LOSSES)}")
        if self.audio not in AUDIO_INPUTS:
            raise ValueError(f"unknown audio input {self.audio!r}; choose from {', '.join(AUDIO_INPUTS)}")
        if self.audio == "speech" and (self.freq_warp or self.time_stretch):
            # Both reshape the mel; the speech encoder reads its own log-mel of the sound.
            raise ValueError("--freq-warp and --time-stretch act on the mel; they do not apply to --audio speech")
        if self.voice_warp and self.audio != "speech":
            raise ValueError("--voice-warp makes variants of the speech features; it needs --audio speech")
        if self.voice_warp and abs(self.voice_warp * 100 - round(self.voice_warp * 100)) > 1e-6:
            # The cache files variants by whole percent (vtlp15): 0.155 and 0.16 would share files drawn for one.
            raise ValueError(f"--voice-warp {self.voice_warp}: give a whole percent (such as 0.15)")
        if self.voice_channel and not self.voice_warp:
            raise ValueError("--voice-channel is a kind of voice variant; it needs --voice-warp")
        if self.voice_warp and self.voice_variants < 1:
            raise ValueError("--voice-variants must be at least 1 with --voice-warp")
        if self.speech_steps != SPEECH_WINDOW_STEPS and self.audio != "speech":
            raise ValueError("--speech-steps sizes speech-feature windows; it needs --audio speech")
        if self.speech_steps < 2:
            raise ValueError("--speech-steps must be at least 2")
        if self.speech_norm not in SPEECH_NORMS:
            choices = ", ".join(SPEECH_NORMS)
            raise ValueError(f"unknown speech normalisation {self.speech_norm!r}; choose from {choices}")
        if self.speech_norm != "none" and self.audio != "speech":
            raise ValueError("--speech-norm normalises speech features; it needs --audio speech")
        if self.audio == "mel+speech" and self.time_stretch:
            raise ValueError("--time-stretch resamples the mel alone; it does not apply to --audio mel+speech")
        if self.keep_best is not None and self.keep_best not in KEEP_BEST:
            raise ValueError(f"unknown dev metric {self.keep_best!r}; choose from {', '.join(KEEP_BEST)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    run: str
    step: int
    stopped: str  # "max_steps" or "time_budget"
    minutes: float
    last_loss: float
    dev: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)  # with keep_best: the step and value of the model in RUN/best/


def _with_speech(model_cfg: LandmarkCompleterConfig, cfg: LandmarkTrainConfig) -> LandmarkCompleterConfig:
    from dubber.weights import load_speech_encoder

    encoder = load_speech_encoder(cfg.speech_encoder, cfg.speech_encoder_path)
    if not 0 <= cfg.speech_layer <= encoder.config.n_layers:
        raise InputError(None, f"--speech-layer {cfg.speech_layer}: the encoder has {encoder.config.n_layers} blocks")
    keep_mel = cfg.audio == "mel+speech"
    d, steps = encoder.config.d_model, cfg.speech_steps
    return model_cfg.with_speech_input(encoder.config.source, d, steps, keep_mel, cfg.speech_layer, cfg.speech_norm)


def _speech_features(
    cache: PrepCache, model_cfg: LandmarkCompleterConfig, cfg: LandmarkTrainConfig
) -> SpeechInput | None:
    """For a completer that reads speech features: make the cache's missing ones; what ``load_clips`` needs."""
    if model_cfg.audio_input == "mel":
        return None
    from dubber.data.speech_cache import add_speech_features
    from dubber.weights import load_speech_encoder

    encoder = load_speech_encoder(model_cfg.speech_encoder, cfg.speech_encoder_path)
    records = [r for split in ("train", "dev") for r in cache.records(split, with_audio=True)]
    made = add_speech_features(cache.root, records, encoder, layer=model_cfg.speech_layer)
    if made:
        log.info("made %s speech features (layer %d) for %d clips", encoder.config.source, model_cfg.speech_layer, made)
    if cfg.voice_warp:
        from dubber.data.speech_cache import add_voice_variants

        train = cache.records("train", with_audio=True)
        layer, amount, count, channel = model_cfg.speech_layer, cfg.voice_warp, cfg.voice_variants, cfg.voice_channel

        def progress(done: int, total: int) -> None:  # the first run makes them all: minutes on a CPU, so say so
            if done == 1 or done % 200 == 0 or done == total:
                log.info("voice variants of the train clips' speech features: %d of %d", done, total)

        made = add_voice_variants(
            cache.root, train, encoder, layer=layer, amount=amount, count=count, channel=channel, progress=progress
        )
        if made:
            log.info("made %d voice variants of the train clips' speech features", made)
    return speech_input(model_cfg)


class BalancedSampler(WindowSampler):
    """WindowSampler drawing speakers in proportion to their frame count ** ``balance``."""

    def __init__(
        self,
        clips,
        window: int,
        n_refs: int,
        balance: float,
        pose_swap: float = 0.0,
        freq_warp: float = 0.0,
        time_stretch: float = 0.0,
        audio_dropout: float = 0.0,
    ) -> None:
        super().__init__(clips, window, n_refs, pose_swap=pose_swap, freq_warp=freq_warp, time_stretch=time_stretch,
                         audio_dropout=audio_dropout)  # fmt: skip
        speakers = np.array([clips[ci].speaker for ci in self.starts[:, 0]])
        names, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
        weight = counts.astype(np.float64) ** balance / counts  # per window
        p = weight[inverse]
        self.p = p / p.sum()
        self.speakers = {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    def batch(self, size: int, seed: int, step: int, rank: int = 0, augment: bool = True):
        rng = np.random.default_rng([seed, step, rank])
        picks = self.starts[rng.choice(len(self.starts), size, p=self.p)]
        return self.gather(picks, rng if augment else None)


@torch.no_grad()
def quick_dev_lmd(model: LandmarkCompleter, clips, device, train_speakers: set[str] | None = None) -> dict:
    """LMD on dev clips from non-overlapping windows, all and on unseen speakers (the full evaluation with its
    baselines is ``dub eval landmarks``)."""
    from dubber.models.landmark_sequence import predict_sequence

    model.eval()
    errs, base, unseen = [], [], []
    for c in clips:
        refs = c.points[reference_indices(c, model.config.n_refs, None)]
        pred = predict_sequence(model, c.mel_windows.astype(np.float32), c.pose, refs, stride=model.config.window)
        u = c.usable
        errs.append(np.linalg.norm(pred[u] - c.content[u], axis=-1).mean())
        base.append(np.linalg.norm(refs[:, -57:].mean(0)[None] - c.content[u], axis=-1).mean())
        if train_speakers is not None and c.speaker not in train_speakers:
            unseen.append((errs[-1], base[-1]))
    model.train()
    out = {"dev_lmd": float(np.mean(errs)), "dev_lmd_ref_mean": float(np.mean(base))}
    if unseen:
        out["dev_lmd_unseen"] = float(np.mean([e for e, _ in unseen]))
        out["dev_lmd_unseen_ref_mean"] = float(np.mean([b for _, b in unseen]))
    return out


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
    from accelerate import Accelerator

    cfg = config or LandmarkTrainConfig()
    run = Path(run)
    cache = PrepCache(data)
    accelerator = Accelerator(cpu=device == "cpu")
    model_cfg = LandmarkCompleterConfig.named(cfg.model)
    if cfg.window is not None:
        if cfg.init_from:  # a fine-tuned model keeps the window it was trained with
            raise InputError(None, "--window cannot change the window of --init-from weights; give one or the other")
        model_cfg = replace(model_cfg, window=cfg.window)
    if cfg.base is not None:
        if cfg.init_from:  # likewise its base
            raise InputError(None, "--base cannot change the base of --init-from weights; give one or the other")
        model_cfg = replace(model_cfg, base=cfg.base)
    config_path = run / "config.json"
    if resume and config_path.is_file():
        saved = json.loads(config_path.read_text())
        cfg = LandmarkTrainConfig(**saved["train"])
        model_cfg = LandmarkCompleterConfig.from_dict(saved["model"])
    elif not resume and (run / "checkpoint.json").exists():
        raise InputError(run, "holds a training run already; pass --resume to continue it or choose another --out")

    torch.manual_seed(cfg.seed)
    start = None
    if cfg.init_from and not (resume and (run / "checkpoint.json").exists()):
        start = LandmarkCompleter.from_pretrained(cfg.init_from)
        model_cfg = start.config
    elif cfg.audio != "mel" and model_cfg.audio_input != cfg.audio:
        model_cfg = _with_speech(model_cfg, cfg)
    speech = _speech_features(cache, model_cfg, cfg)
    delays = read_audio_delays(cfg.sync_offsets) if cfg.sync_offsets else {}
    voices = (cfg.voice_warp, cfg.voice_variants, cfg.voice_channel) if cfg.voice_warp else None
    train_clips = load_clips(
        cache, "train", min_frames=model_cfg.window, audio_delays=delays, speech=speech, voices=voices
    )
    if not train_clips:
        raise InputError(cache.root, "no train clips with audio in the cache")
    dev_clips = load_clips(cache, "dev", min_frames=model_cfg.window, speech=speech)
    sampler = BalancedSampler(
        train_clips,
        model_cfg.window,
        model_cfg.n_refs,
        cfg.speaker_balance,
        cfg.pose_swap,
        cfg.freq_warp,
        cfg.time_stretch,
        cfg.audio_dropout,
    )
    if cfg.keep_best and not dev_clips:
        raise InputError(cache.root, f"no dev clips to keep the best {cfg.keep_best} by")
    if cfg.keep_best == "dev_lmd_unseen" and all(c.speaker in sampler.speakers for c in dev_clips):
        raise InputError(cache.root, "every dev speaker is also a train speaker: there is no dev_lmd_unseen to keep")
    model = start if start is not None else LandmarkCompleter(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt = accelerator.prepare(model, opt)
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        config_path.write_text(
            json.dumps(
                {
                    "train": cfg.to_dict(),
                    "model": model_cfg.to_dict(),
                    "data": str(Path(data).resolve()),
                    "train_clips": len(train_clips),
                    "train_windows": len(sampler),
                    "train_speakers": sampler.speakers,
                    "audio_delays": delays,
                    "dev_clips": len(dev_clips),
                },
                indent=1,
            )
        )
    step = 0
    elapsed_before = 0.0
    best: dict = {}  # {"step", "value"} of the lowest keep_best metric so far; carried in checkpoints
    if resume:
        state = load_checkpoint(accelerator, run)
        if state is not None:
            step, elapsed_before = int(state["step"]), float(state.get("minutes", 0.0))
            best = state.get("best") or {}
            log.info("resumed %s at step %d", run, step)
    log_path = run / "log.jsonl"

    emit = run_logger(log_path, accelerator.is_main_process, log_fn)

    t0 = time.perf_counter()
    last_ckpt = t0
    minutes = elapsed_before
    stopped = "max_steps"
    loss_avg = float("nan")
    dev: dict = {}
    unwrapped = accelerator.unwrap_model(model)
    model.train()
    while step < cfg.max_steps:
        if max_minutes is not None and (time.perf_counter() - t0) / 60.0 >= max_minutes:
            stopped = "time_budget"
            break
        batch = sampler.batch(cfg.batch_size, cfg.seed, step, accelerator.process_index)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(step, cfg.warmup_steps, cfg.max_steps)
        pred = model(batch["mel"], batch["pose"], batch["refs"])
        loss, parts = landmark_loss(pred, batch["target"], cfg.velocity_weight, cfg.opening_weight, cfg.point_loss)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        loss_value = float(loss.detach())
        loss_avg = loss_value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * loss_value
        minutes = elapsed_before + (time.perf_counter() - t0) / 60.0
        if step % 50 == 0 or step == 1:
            emit(
                {
                    "step": step,
                    "loss": loss_value,
                    "loss_avg": loss_avg,
                    **parts,
                    "lr": opt.param_groups[0]["lr"],
                    "minutes": round(minutes, 3),
                }
            )
        if dev_clips and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            dev = quick_dev_lmd(unwrapped, dev_clips, accelerator.device, set(sampler.speakers))
            emit({"step": step, "eval": True, **dev, "minutes": round(minutes, 3)})
            value = dev.get(cfg.keep_best) if cfg.keep_best else None
            if value is not None and (not best or value < best["value"]):
                best = {"step": step, "value": value}
                if accelerator.is_main_process:
                    extra = {"trained_steps": step, "train_minutes": round(minutes, 2), "best_of": cfg.keep_best}
                    save_best_model(unwrapped, run, {**extra, "best_value": value})
                emit({"step": step, "best": cfg.keep_best, "value": value})
        if (time.perf_counter() - last_ckpt) / 60.0 >= cfg.checkpoint_minutes:
            save_checkpoint(accelerator, run, step, {"minutes": minutes, "best": best})
            last_ckpt = time.perf_counter()
    save_checkpoint(accelerator, run, step, {"minutes": minutes, "best": best})
    if accelerator.is_main_process:
        unwrapped.save_pretrained(run / "model", extra={"trained_steps": step, "train_minutes": round(minutes, 2)})
    emit({"step": step, "done": stopped, "minutes": round(minutes, 3)})
    return TrainResult(str(run), step, stopped, round(minutes, 2), loss_avg, dev, best)
