"""One training loop for every model, on HF accelerate; what differs between them is a ``TrainTask``.

The loop owns what every run shares: warm-up and cosine learning rate, gradient clipping, the JSON-lines log
(``RUN/log.jsonl``), dev evaluations every N steps (and before the first step for a fine-tuning task), the model at
its best dev value (``RUN/best/``), checkpoints on a time budget that resume exactly (``checkpoints.py``), a time
budget for the whole run, and the final model in ``RUN/model/``. One CPU works; ``accelerate launch -m dubber train
...`` spreads it over GPUs (each process draws its own batches; evaluation, logs and saving happen on the main one).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from dubber.log import get_logger
from dubber.training.checkpoints import load_checkpoint, save_best_model, save_checkpoint

log = get_logger("train")


class TrainTask(Protocol):
    """What one kind of training adds to the loop."""

    evaluate_first: bool  # evaluate before the first step: a fine-tuning run reports where it started

    def loss(self, step: int, rank: int, device: torch.device) -> tuple[torch.Tensor, dict]:
        """The loss of step ``step``'s batch (a pure function of the seed, the step and the process ``rank``) and
        its parts for the log; called under the accelerator's autocast."""

    def after_step(self) -> dict:
        """Anything after the optimizer's step (an EMA update); returns more fields for the log."""

    def evaluate(self, step: int) -> dict:
        """Dev metrics of the model as it is now ({} without dev data); leaves it in training mode."""

    def save(self, folder: Path, extra: dict) -> None:
        """The model as it ships (``extra``: what the run says of it, such as its step), into ``folder``."""


@dataclass(frozen=True)
class LoopSettings:
    max_steps: int  # the cosine schedule's length; a time budget may stop earlier
    warmup_steps: int
    eval_every: int
    checkpoint_minutes: float
    grad_clip: float
    keep_best: str | None = None  # a dev metric: the model at its lowest value is kept in RUN/best/


@dataclass
class TrainResult:
    run: str
    step: int
    stopped: str  # "max_steps" or "time_budget"
    minutes: float
    last_loss: float
    dev: dict = field(default_factory=dict)  # the last dev evaluation
    best: dict = field(default_factory=dict)  # with keep_best: the step and value of the model in RUN/best/
    dev_before: dict = field(default_factory=dict)  # a task that evaluates first: before its first step


def lr_factor(step: int, warmup: int, max_steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 5% at ``max_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_accelerator(device: str | None, mixed_precision: str):
    """An Accelerator on the CPU (``device`` "cpu", or no GPU) or the GPUs; ``mixed_precision`` "auto": bf16 on a
    GPU, none on the CPU."""
    from accelerate import Accelerator

    cpu = device == "cpu" or not torch.cuda.is_available()
    precision = mixed_precision if mixed_precision != "auto" else ("no" if cpu else "bf16")
    return Accelerator(cpu=cpu, mixed_precision=precision)


def write_run_config(run: Path, is_main: bool, config: dict) -> None:
    """``RUN/config.json``: what a resume reads back (the train and model configs) and what the run trained on."""
    if is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(config, indent=1))


class _RunLog:
    """One JSON line per record in ``RUN/log.jsonl`` (main process only), each also passed to ``log_fn``."""

    def __init__(self, path: Path, is_main: bool, log_fn: Callable[[dict], None] | None) -> None:
        self.path, self.is_main, self.log_fn = path, is_main, log_fn

    def __call__(self, record: dict) -> None:
        if self.is_main:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.log_fn is not None:
                self.log_fn(record)


def train_loop(
    accelerator,
    task: TrainTask,
    opt: torch.optim.Optimizer,
    settings: LoopSettings,
    run: Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    log_fn: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``task`` with ``opt`` (already prepared by ``accelerator``) until ``settings.max_steps`` or
    ``max_minutes``; with ``resume``, from the run's latest checkpoint."""
    main = accelerator.is_main_process
    emit = _RunLog(run / "log.jsonl", main, log_fn)
    for group in opt.param_groups:  # before a resume restores the groups: a saved group brings its own
        group.setdefault("base_lr", group["lr"])
    step, minutes_before, best, dev_before = 0, 0.0, {}, {}
    state = load_checkpoint(accelerator, run) if resume else None
    if state is not None:
        step, minutes_before = int(state["step"]), float(state.get("minutes", 0.0))
        best, dev_before = state.get("best") or {}, state.get("dev_before") or {}
        log.info("resumed %s at step %d", run, step)
    elif task.evaluate_first and main:
        dev_before = task.evaluate(0)
        emit({"step": 0, "eval": True, **dev_before})
    params = [p for group in opt.param_groups for p in group["params"]]
    t0 = last_checkpoint = time.perf_counter()
    minutes, stopped, loss_avg, dev, evaluated = minutes_before, "max_steps", float("nan"), {}, step

    def evaluate() -> None:
        nonlocal dev, best, evaluated
        evaluated = step
        if not main:
            return
        dev = task.evaluate(step)
        if not dev:
            return
        emit({"step": step, "eval": True, **dev, "minutes": round(minutes, 3)})
        value = dev.get(settings.keep_best) if settings.keep_best else None
        if value is not None and (not best or value < best["value"]):
            best = {"step": step, "value": value}
            extra = {"trained_steps": step, "train_minutes": round(minutes, 2), "best_of": settings.keep_best}
            save_best_model(lambda folder: task.save(folder, {**extra, "best_value": value}), run)
            emit({"step": step, "best": settings.keep_best, "value": value})

    def checkpoint() -> None:
        save_checkpoint(accelerator, run, step, {"minutes": minutes, "best": best, "dev_before": dev_before})

    while step < settings.max_steps:
        if max_minutes is not None and (time.perf_counter() - t0) / 60.0 >= max_minutes:
            stopped = "time_budget"
            break
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, settings.warmup_steps, settings.max_steps)
        with accelerator.autocast():
            loss, parts = task.loss(step, accelerator.process_index, accelerator.device)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if settings.grad_clip:
            accelerator.clip_grad_norm_(params, settings.grad_clip)
        opt.step()
        parts = {**parts, **task.after_step()}
        step += 1
        value = float(loss.detach())
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        minutes = minutes_before + (time.perf_counter() - t0) / 60.0
        if step % 50 == 0 or step == 1:
            emit(
                {
                    "step": step,
                    "loss": value,
                    "loss_avg": loss_avg,
                    **parts,
                    "lr": opt.param_groups[0]["lr"],
                    "minutes": round(minutes, 3),
                }
            )
        if step % settings.eval_every == 0 or step == settings.max_steps:
            evaluate()
        if (time.perf_counter() - last_checkpoint) / 60.0 >= settings.checkpoint_minutes:
            checkpoint()
            last_checkpoint = time.perf_counter()
    if evaluated != step:  # stopped by the time budget: say where it stopped
        evaluate()
    checkpoint()
    if main:
        task.save(run / "model", {"trained_steps": step, "train_minutes": round(minutes, 2)})
    emit({"step": step, "done": stopped, "minutes": round(minutes, 3)})
    return TrainResult(str(run), step, stopped, round(minutes, 2), loss_avg, dev, best, dev_before)
