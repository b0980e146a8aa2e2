"""What every training run shares: the JSON-lines log and the warm-up + cosine learning-rate factor."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path


def run_logger(path: Path, is_main: bool, log_fn: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """A function appending one JSON line per record to ``path`` (main process only) and passing it to ``log_fn``."""

    def emit(rec: dict) -> None:
        if is_main:
            with open(path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            if log_fn is not None:
                log_fn(rec)

    return emit


def lr_factor(step: int, warmup: int, max_steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 5% at ``max_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))
