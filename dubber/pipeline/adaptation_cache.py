"""Adapted landmark completers kept on disk, so that dubbing one video with many audios adapts it once.

An entry is keyed by what made it: the video's bytes, the loaded completer's weights, the adaptation's settings
(its time budget aside: the steps decide the result) and the recipe's version. ``CACHE/<key>/`` holds the adapted
model folder and ``entry.json`` (the video, when, the settings); it is written under a temporary name and renamed,
so a half-written entry is never read. ``dub cache list|clear`` shows and empties it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dubber.log import get_logger
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_ensemble import LandmarkEnsemble, is_ensemble_folder
from dubber.pipeline.adaptation import AdaptationSettings
from dubber.weights import sha256_of

log = get_logger("pipeline")

ENTRY = "entry.json"
MODEL = "model"
RECIPE = 3  # of what adaptation does beyond its settings: 2 lines the video's sound up with its mouth first, 3 learns
# from one person's frames only (``AdaptationSettings.person``)


def default_cache_dir() -> Path:
    """``DUB_CACHE`` or the platform's user cache folder (``XDG_CACHE_HOME``, ``~/.cache``, ``%LOCALAPPDATA%``)."""
    if os.environ.get("DUB_CACHE"):
        return Path(os.environ["DUB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or Path.home() / ".cache"
    return Path(base) / "dubber" / "adapted"


def model_digest(model: torch.nn.Module) -> str:
    """The weights' bytes, in a fixed order: another model (or the same one in another precision) is another key."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def entry_key(video: Path, model: torch.nn.Module, settings: AdaptationSettings) -> str:
    parts = {k: v for k, v in asdict(settings).items() if k != "seconds"}
    key = {"video": sha256_of(video), "model": model_digest(model), "settings": parts, "recipe": RECIPE}
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class CacheEntry:
    key: str
    video: str
    created: float
    seconds: float  # the adaptation's own time
    bytes: int


class AdaptationCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def load(self, key: str, like: LandmarkCompleter | LandmarkEnsemble):
        """The adapted model stored under ``key`` on ``like``'s device and precision, or None."""
        folder = self.root / key / MODEL
        if not (self.root / key / ENTRY).is_file():
            return None
        param = next(like.parameters())
        try:
            cls = LandmarkEnsemble if is_ensemble_folder(folder) else LandmarkCompleter
            return cls.from_pretrained(folder, device=param.device, dtype=param.dtype)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            log.warning("%s: unreadable cache entry, adapting again (%s)", self.root / key, exc)
            return None

    def store(self, key: str, model: LandmarkCompleter | LandmarkEnsemble, video: Path, seconds: float) -> None:
        partial = self.root / f".{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            model.save_pretrained(partial / MODEL)
            entry = {"key": key, "video": str(Path(video).resolve()), "created": time.time(), "seconds": seconds}
            (partial / ENTRY).write_text(json.dumps(entry, indent=1))
            shutil.rmtree(self.root / key, ignore_errors=True)
            os.replace(partial, self.root / key)
        except OSError as exc:  # a cache that cannot be written costs the next dub its time, nothing else
            shutil.rmtree(partial, ignore_errors=True)
            log.warning("%s: cannot keep the adapted model (%s)", self.root, exc.strerror or exc)

    def entries(self) -> list[CacheEntry]:
        out = []
        for folder in sorted(self.root.glob("*/")) if self.root.is_dir() else []:
            try:
                meta = json.loads((folder / ENTRY).read_text())
            except (OSError, ValueError):
                continue
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            out.append(CacheEntry(meta["key"], meta["video"], meta["created"], meta["seconds"], size))
        return out

    def clear(self) -> int:
        """Remove every entry (and any half-written one); returns how many entries there were."""
        count = len(self.entries())
        if self.root.is_dir():
            for folder in self.root.iterdir():
                shutil.rmtree(folder, ignore_errors=True)
        return count
