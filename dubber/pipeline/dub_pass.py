"""Pass 2's loop over the output frames: decode a chunk, redraw its faces, paste them back and encode it; with
``overlap`` the decoding runs a chunk ahead of the models and the pasting and encoding a chunk behind them, each in
a thread (``dubber.pipeline.overlap``). Every chunk passes every stage in order, so the bytes are the same."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.heap import HeapTrimmer
from dubber.media.video_writer import VideoWriter
from dubber.pipeline.audio_tracks import output_audio
from dubber.pipeline.face_redraw import DrawnFaces, FaceRedrawer, add_time
from dubber.pipeline.frame_source import FrameSpool, frames_in_order
from dubber.pipeline.job import DubJob
from dubber.pipeline.overlap import Consumer, Prefetcher
from dubber.pipeline.timeline import Timeline

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


def encode_dub(job: DubJob, timeline: Timeline, spool: FrameSpool | None, redraw: FaceRedrawer | None) -> int:
    """The output video of ``job`` along ``timeline``: its frames read again (or from ``spool``), redrawn where
    ``redraw`` has a face, encoded with the new audio muxed; the frames whose face was redrawn."""
    opts, reader, timings = job.opts, job.reader, job.timings
    width, height = reader.size
    writer = VideoWriter(
        job.output,
        width=width,
        height=height,
        fps=opts.fps if job.still else reader.fps,
        time_base=None if job.still else reader.info.time_base,
        options=VideoEncodeOptions(crf=opts.crf, preset=opts.preset),
        audio=output_audio(job.audio, job.media, timeline, job.fps, keep_original=opts.keep_original_audio),
        overwrite=opts.overwrite,
    )
    with writer:
        faces = write_frames(
            frames_in_order(reader, (timeline.source_index(i) for i in range(timeline.total_frames)), spool),
            timeline.total_frames,
            redraw,
            writer,
            DubPassSettings(job.batch_size, opts.overlap),
            timings,
            None if job.progress is None else partial(job.progress, "dub"),
        )
        t0 = time.perf_counter()
    add_time(timings, "encode", t0)  # flushing the encoder and the audio
    return faces
