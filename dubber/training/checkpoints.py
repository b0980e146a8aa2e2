"""Time-budget checkpoints that resume exactly: accelerate's state (model, optimizer, RNG) plus our step.

``RUN/checkpoints/step_NNNNNNN/`` holds one full checkpoint; ``RUN/checkpoint.json`` names the latest (written last,
atomically, as k-diffusion does), so an interrupted save never becomes the one a resume picks.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

POINTER = "checkpoint.json"


def save_checkpoint(accelerator, run: Path, step: int, extra: dict | None = None, keep: int = 2) -> Path:
    folder = run / "checkpoints" / f"step_{step:07d}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / "trainer_state.json").write_text(json.dumps({"step": step, **(extra or {})}))
        tmp = run / (POINTER + ".partial")
        tmp.write_text(json.dumps({"step": step, "path": str(folder.relative_to(run))}))
        os.replace(tmp, run / POINTER)
        old = sorted((run / "checkpoints").glob("step_*"))[:-keep]
        for o in old:
            shutil.rmtree(o, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def latest_checkpoint(run: Path) -> tuple[Path, dict] | None:
    try:
        pointer = json.loads((run / POINTER).read_text())
        folder = run / pointer["path"]
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return folder, state


def load_checkpoint(accelerator, run: Path) -> dict | None:
    found = latest_checkpoint(run)
    if found is None:
        return None
    folder, state = found
    accelerator.load_state(str(folder))
    return state


BEST = "best"


def save_best_model(save: Callable[[Path], None], run: Path) -> Path:
    """Write the model (``save(folder)``) to ``RUN/best/``, replacing the folder whole, so that an interrupted save
    leaves the previous best in place rather than half of each."""
    final, partial, old = run / BEST, run / (BEST + ".partial"), run / (BEST + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    save(partial)
    if final.exists():
        os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
