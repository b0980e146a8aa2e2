"""Source frames in the order the output shows them, with memory that does not grow with the video.

A cut, an equal-length or a frozen output needs its source frames in non-decreasing order: one more decoding pass
gives them. Ping-pong and loop need frames again after later ones, which a decoder could only give by seeking back
to a keyframe and decoding forward; instead the analysis pass spools raw frames to a temporary file on disk and they
are read back by index.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dubber.errors import DubberError
from dubber.media.video_reader import VideoReader


class FrameSpool:
    """Raw RGB frames of one size in an anonymous temporary file (deleted when closed, even after a crash)."""

    def __init__(self, width: int, height: int, frames: int, folder: str | Path | None = None) -> None:
        self.shape = (height, width, 3)
        self.frame_bytes = width * height * 3
        where = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        need = self.frame_bytes * frames
        free = shutil.disk_usage(where).free
        if need > 0.9 * free:
            raise DubberError(
                f"{where}: extending this video needs {need / 2**30:.1f} GiB of temporary space and only "
                f"{free / 2**30:.1f} GiB is free (set TMPDIR, or use --fit freeze)"
            )
        self._file = tempfile.TemporaryFile(dir=where)
        self.count = 0

    def append(self, image: np.ndarray) -> None:
        self._file.seek(self.count * self.frame_bytes)
        self._file.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        self.count += 1

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} of a spool of {self.count}")
        out = np.empty(self.shape, np.uint8)
        self._file.seek(index * self.frame_bytes)
        self._file.readinto(memoryview(out).cast("B"))
        return out

    def close(self) -> None:
        self._file.close()


def frames_in_order(reader: VideoReader, order: Iterable[int], spool: FrameSpool | None) -> Iterator[np.ndarray]:
    """The source image for each index in ``order``: read from ``spool`` when given, else decoded again (then
    ``order`` must not decrease)."""
    if spool is not None:
        for s in order:
            yield spool.read(s)
        return
    frames = iter(reader)
    current = next(frames)
    for s in order:
        if s < current.index:
            raise ValueError(f"source frame {s} requested after frame {current.index} without a spool")
        while current.index < s:
            current = next(frames)
        yield current.image
