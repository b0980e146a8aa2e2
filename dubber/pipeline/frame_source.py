"""Source frames in the order the output shows them, with memory that does not grow with the video.

A cut, an equal-length or a frozen output needs its source frames in non-decreasing order: one more decoding pass
gives them. Ping-pong and loop need frames again after later ones, which a decoder could only give by seeking back
to a keyframe and decoding forward; instead the analysis pass spools those frames (``Timeline.revisited``: all of
them for a long extension, a few for audio a few frames longer than the video) raw to a temporary file on disk, and
they are read back by index. Spooling every frame of a 9 s 720p clip whose own audio track ran one frame long
wrote 608 MB and took 4.7 s, more than the face tracking it was counted in.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dubber.errors import DubberError
from dubber.media.video_reader import VideoReader
from dubber.media.yuv_image import YuvImage


class FrameSpool:
    """Raw frames of one size in an anonymous temporary file (deleted when closed, even after a crash), holding only
    the source frames ``wanted``: the ones the output shows again after later ones. A frame is kept as it is offered
    (RGB, or the decoded planes, which the output then writes as decoded) and read back the same."""

    def __init__(self, width: int, height: int, wanted: Iterable[int], folder: str | Path | None = None) -> None:
        self.shape = (height, width, 3)
        self.frame_bytes = width * height * 3  # a slot holds RGB, or planes in its first half
        self.wanted = np.unique(np.fromiter(wanted, np.int64))
        where = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        need = self.frame_bytes * len(self.wanted)
        free = shutil.disk_usage(where).free
        if need > 0.9 * free:
            raise DubberError(
                f"{where}: extending this video needs {need / 2**30:.1f} GiB of temporary space and only "
                f"{free / 2**30:.1f} GiB is free (set TMPDIR, or use --fit freeze)"
            )
        self._file = tempfile.TemporaryFile(dir=where)
        self._held = np.zeros(len(self.wanted), bool)
        self._colour: dict[int, tuple[int, int]] = {}  # slot -> (colorspace, range) of a frame kept as planes
        self._lock = threading.Lock()

    def _slot(self, index: int) -> int | None:
        k = int(np.searchsorted(self.wanted, index))
        return k if k < len(self.wanted) and self.wanted[k] == index else None

    def offer(self, index: int, image: np.ndarray | YuvImage) -> None:
        """Keep source frame ``index`` if it is wanted."""
        k = self._slot(index)
        if k is None:
            return
        planes = isinstance(image, YuvImage)
        data = (image.data if planes else np.ascontiguousarray(image, dtype=np.uint8)).tobytes()
        with self._lock:  # pass 1 may track segments in several threads (parallel_tracking.py)
            self._file.seek(k * self.frame_bytes)
            self._file.write(data)
            self._held[k] = True
            if planes:
                self._colour[k] = (image.colorspace, image.color_range)
            else:
                self._colour.pop(k, None)

    def holds(self, indices: Iterable[int]) -> bool:
        """Whether every frame of ``indices`` was kept."""
        for index in np.unique(np.fromiter(indices, np.int64)):
            k = self._slot(int(index))
            if k is None or not self._held[k]:
                return False
        return True

    def read(self, index: int) -> np.ndarray | YuvImage:
        k = self._slot(index)
        if k is None or not self._held[k]:
            raise IndexError(f"frame {index} is not in this spool")
        h, w, _ = self.shape
        colour = self._colour.get(k)
        out = np.empty((h * 3 // 2, w) if colour is not None else self.shape, np.uint8)
        with self._lock:
            self._file.seek(k * self.frame_bytes)
            self._file.readinto(memoryview(out).cast("B"))
        return out if colour is None else YuvImage(out, *colour)

    def close(self) -> None:
        self._file.close()


def frames_in_order(
    reader: VideoReader, order: Iterable[int], spool: FrameSpool | None, pixels: str = "rgb"
) -> Iterator[np.ndarray | YuvImage]:
    """The source image for each index in ``order``: decoded forward while the order goes forward (``pixels`` as
    ``VideoReader.frames`` takes it), read from ``spool`` for a frame the decoder has passed (the spool must hold
    every such frame)."""
    frames = reader.frames(pixels)
    current = next(frames)
    for s in order:
        while current is not None and current.index < s:
            current = next(frames, None)
        if current is not None and current.index == s:
            yield current.image
        elif spool is not None:
            yield spool.read(s)
        else:
            raise ValueError(f"source frame {s} requested after frame {current.index} without a spool")
