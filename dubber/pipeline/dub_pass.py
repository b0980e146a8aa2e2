"""Pass 2's loop over the output frames: decode a chunk, redraw its faces, paste them back and encode it; with
``overlap`` the decoding runs a chunk ahead of the models and the pasting and encoding a chunk behind them, each in
a thread (``dubber.pipeline.overlap``). Every chunk passes every stage in order, so the bytes are the same."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from dubber.media.heap import HeapTrimmer
from dubber.media.video_writer import VideoWriter
from dubber.pipeline.face_redraw import DrawnFaces, FaceRedrawer, add_time
from dubber.pipeline.overlap import Consumer, Prefetcher

Chunk = tuple[int, list[np.ndarray]]


@dataclass(frozen=True)
class DubPassSettings:
    batch_size: int  # output frames per chunk
    overlap: bool  # the stages in threads at once


def write_frames(
    source: Iterator[np.ndarray],
    total: int,
    redraw: FaceRedrawer | None,
    writer: VideoWriter,
    settings: DubPassSettings,
    timings: dict[str, float],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write ``total`` output frames, the source images in output order from ``source``, their faces redrawn by
    ``redraw`` (None: no face anywhere); returns how many faces were redrawn. ``progress(done, total)`` is called
    from the thread that encodes when the stages overlap."""
    trim = HeapTrimmer()
    faces = 0

    def chunks() -> Iterator[Chunk]:
        for start in range(0, total, settings.batch_size):
            t0 = time.perf_counter()
            images = [next(source).copy() for _ in range(start, min(start + settings.batch_size, total))]
            add_time(timings, "decode", t0)
            yield start, images

    def draw(start: int, images: list[np.ndarray]) -> DrawnFaces | None:
        return redraw.draw(images, start) if redraw is not None else None

    def finish(item: tuple[int, list[np.ndarray], DrawnFaces | None]) -> None:
        nonlocal faces
        start, images, drawn = item
        faces += redraw.paste(images, start, drawn) if redraw is not None else 0
        t0 = time.perf_counter()
        for image in images:
            writer.write(image)
        add_time(timings, "encode", t0)
        trim(len(images))
        if progress is not None:
            progress(start + len(images), total)

    if not settings.overlap:
        for start, images in chunks():
            finish((start, images, draw(start, images)))
        return faces
    with Prefetcher(chunks(), depth=2, name="dub-decode") as decoded:
        encoder = Consumer(finish, depth=2, name="dub-encode")
        try:
            for start, images in decoded:
                encoder.submit((start, images, draw(start, images)))
            encoder.finish()
        except BaseException:
            encoder.close()
            raise
    return faces
