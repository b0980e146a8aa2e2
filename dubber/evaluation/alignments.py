"""Word alignments (GRID ``.align`` files: ``start end word`` in 1/25000 s, ``sil`` for silence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRID_TICKS_PER_SECOND = 25_000.0
SILENCE_WORDS = {"sil", "sp"}


def read_align(path: str | Path) -> list[tuple[float, float, str]]:
    """(start s, end s, word) spans."""
    spans = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            spans.append((float(parts[0]) / GRID_TICKS_PER_SECOND, float(parts[1]) / GRID_TICKS_PER_SECOND, parts[2]))
    return spans


def silence_mask(times: np.ndarray, spans: list[tuple[float, float, str]], margin: float = 0.12) -> np.ndarray:
    """Frames well inside silence: in a silent span and at least ``margin`` s from any spoken word.

    The margin leaves out the lips' anticipation before a word and their release after it.
    """
    t = np.asarray(times, np.float64)
    silent = np.zeros(len(t), bool)
    for start, end, word in spans:
        if word in SILENCE_WORDS:
            silent |= (t >= start) & (t < end)
    for start, end, word in spans:
        if word not in SILENCE_WORDS:
            silent &= ~((t > start - margin) & (t < end + margin))
    return silent


def find_align(align_dir: Path | None, source: str) -> Path | None:
    if align_dir is None:
        return None
    candidate = Path(align_dir) / (Path(source).stem + ".align")
    return candidate if candidate.is_file() else None
