"""Per-step feature rows kept on disk, so an hour of audio costs the dub no more memory than a minute.

A dub reads its audio features a few hundred steps at a time, always near the frames it is drawing; the features
of the whole audio (4.6 MB a minute for the speech encoder's, 1.5 MB for the mel) are written once to a temporary
file and read back by span. Explicit reads, not ``np.memmap``: pages of a mapping stay in the resident set once
touched, and a dub walks the whole file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class RowStore:
    """Append-only float32 rows of one width in a temporary file; ``rows(lo, hi)`` reads a span back."""

    def __init__(self, width: int, *, folder: str | Path | None = None) -> None:
        self.width = int(width)
        fd, name = tempfile.mkstemp(prefix="dubber-rows-", suffix=".f32", dir=folder)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self._count = 0
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def __len__(self) -> int:
        return self._count + self._pending_rows

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.width)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, self.width)
        if len(rows):
            self._pending.append(rows)
            self._pending_rows += len(rows)
            if self._pending_rows >= 4096:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._file.seek(self._count * self.width * 4)
            for rows in self._pending:
                self._file.write(rows.tobytes())
            self._file.flush()
            self._count += self._pending_rows
            self._pending, self._pending_rows = [], 0

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, width) rows ``lo..hi-1`` (clipped to the rows held)."""
        self._flush()
        lo, hi = max(0, int(lo)), min(self._count, int(hi))
        if hi <= lo:
            return np.zeros((0, self.width), np.float32)
        self._file.seek(lo * self.width * 4)
        data = self._file.read((hi - lo) * self.width * 4)
        return np.frombuffer(data, dtype=np.float32).reshape(hi - lo, self.width)

    def close(self) -> None:
        """Delete the file (safe to call twice)."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> RowStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the module globals may be gone
            pass


Rows = np.ndarray | RowStore


def take_rows(source: Rows, index: np.ndarray) -> np.ndarray:
    """``source[index]`` as float32 for an integer array ``index`` within ``0..len(source)-1``, reading only the
    span it covers when the rows are on disk."""
    index = np.asarray(index, dtype=np.int64)
    if isinstance(source, np.ndarray):
        return np.asarray(source[index], dtype=np.float32)
    if index.size == 0:
        return np.zeros((*index.shape, source.width), np.float32)
    lo, hi = int(index.min()), int(index.max()) + 1
    return source.rows(lo, hi)[index - lo]
