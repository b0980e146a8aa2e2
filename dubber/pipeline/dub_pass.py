"""Pass 2's loop over the output frames: decode a chunk, plan its faces (the target landmarks), draw them (aligned
crops, references, the renderer), paste them back and encode it. With ``overlap`` the stages run in threads
(``dubber.pipeline.overlap``): the decoding and planning a chunk or two ahead of the drawing, the pasting and
encoding behind it; where torch runs one thread on a CPU of two cores or more, ``render_workers`` threads each draw
and paste a chunk of their own, so that the core the encoder leaves idle draws the next chunk. Chunks are planned
and encoded in order and each chunk's drawing and paste depend on its own inputs alone, so the bytes are the same.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from dubber.cpu_threads import start_torch_thread, usable_cores
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.heap import HeapTrimmer
from dubber.media.video_writer import VideoWriter
from dubber.media.yuv_image import YuvImage
from dubber.pipeline.face_redraw import DrawnFaces, FaceRedrawer, PlannedFaces, add_time
from dubber.pipeline.frame_source import FrameSpool, frames_in_order
from dubber.pipeline.job import DubJob
from dubber.pipeline.output_streams import output_streams
from dubber.pipeline.overlap import Consumer, Prefetcher
from dubber.pipeline.timeline import Timeline

Image = np.ndarray | YuvImage  # RGB, or the decoded planes (the face's region made RGB only where it is redrawn)
Chunk = tuple[int, list[Image], PlannedFaces | None]


@dataclass(frozen=True)
class DubPassSettings:
    batch_size: int  # output frames per chunk
    overlap: bool  # the stages in threads at once
    render_workers: int = 1  # with ``overlap``, chunks rendered at once (each in its own thread)


def write_frames(
    source: Iterator[Image],
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
        start_torch_thread()  # the chunks are planned (the completer) in the decoding thread when the stages overlap
        for start in range(0, total, settings.batch_size):
            t0 = time.perf_counter()
            images = [next(source).copy() for _ in range(start, min(start + settings.batch_size, total))]
            add_time(timings, "decode", t0)
            yield start, images, redraw.plan(start, len(images)) if redraw is not None else None

    def draw(start: int, images: list[Image], planned: PlannedFaces | None) -> DrawnFaces | None:
        return redraw.render(images, start, planned) if redraw is not None and planned is not None else None

    def paste(start: int, images: list[Image], drawn: DrawnFaces | None) -> int:
        return redraw.paste(images, start, drawn) if redraw is not None else 0

    def draw_and_paste(start: int, images: list[Image], planned: PlannedFaces | None) -> int:
        return paste(start, images, draw(start, images, planned))

    def encode(item: tuple[int, list[Image], int]) -> None:
        nonlocal faces
        start, images, pasted = item
        faces += pasted
        t0 = time.perf_counter()
        for image in images:
            writer.write(image)
        add_time(timings, "encode", t0)
        trim(len(images))
        if progress is not None:
            progress(start + len(images), total)

    def finish(item: tuple[int, list[Image], DrawnFaces | None]) -> None:
        start, images, drawn = item
        encode((start, images, paste(start, images, drawn)))

    if not settings.overlap:
        for start, images, planned in chunks():
            finish((start, images, draw(start, images, planned)))
        return faces
    workers = max(1, settings.render_workers)
    if workers == 1:  # the models in this thread, the paste beside the encoder
        with Prefetcher(chunks(), depth=2, name="dub-decode") as decoded:
            encoder = Consumer(finish, depth=2, name="dub-encode")
            try:
                for start, images, planned in decoded:
                    encoder.submit((start, images, draw(start, images, planned)))
                encoder.finish()
            except BaseException:
                encoder.close()
                raise
        return faces
    # Several chunks drawn and pasted at once, each in a worker; their frames encoded in order.
    with (
        Prefetcher(chunks(), depth=2, name="dub-decode") as decoded,
        ThreadPoolExecutor(workers, thread_name_prefix="dub-render", initializer=start_torch_thread) as pool,
    ):
        encoder = Consumer(encode, depth=2, name="dub-encode")
        drawing: deque[tuple[int, list[Image], Future]] = deque()  # in order; at most ``workers`` at once
        try:
            for start, images, planned in decoded:
                drawing.append((start, images, pool.submit(draw_and_paste, start, images, planned)))
                if len(drawing) >= workers:
                    start, images, future = drawing.popleft()
                    encoder.submit((start, images, future.result()))
            while drawing:
                start, images, future = drawing.popleft()
                encoder.submit((start, images, future.result()))
            encoder.finish()
        except BaseException:
            for _, _, future in drawing:
                future.cancel()
            encoder.close()
            raise
    return faces


def render_workers(device: torch.device, runtime: str) -> int:
    """Chunks to render at once: two where torch runs one thread on a CPU of two cores or more (the second takes
    the core the encoder leaves idle; each runs its ops on one thread, so none spins waiting on a preempted one),
    else one: a GPU, torch on several threads, or onnxruntime, which runs its own threads."""
    if device.type != "cpu" or runtime != "torch" or torch.get_num_threads() != 1:
        return 1
    return 2 if usable_cores() >= 2 else 1


def encode_dub(job: DubJob, timeline: Timeline, spool: FrameSpool | None, redraw: FaceRedrawer | None) -> int:
    """The output video of ``job`` along ``timeline``: its frames read again (or from ``spool``), redrawn where
    ``redraw`` has a face, encoded with the new audio muxed; the frames whose face was redrawn."""
    opts, reader, timings = job.opts, job.reader, job.timings
    width, height = reader.size
    job.streams = streams = output_streams(
        job.video,
        job.audio,
        job.media,
        job.output,
        timeline,
        job.fps,
        language=opts.language,
        keep_original=opts.keep_original_audio,
        source_subtitles=opts.source_subtitles,
        subtitles=job.subtitles,
    )
    writer = VideoWriter(
        job.output,
        width=width,
        height=height,
        fps=opts.fps if job.still else reader.fps,
        time_base=None if job.still else reader.info.time_base,
        options=VideoEncodeOptions(crf=opts.crf, preset=opts.preset),
        audio=streams.audio,
        overwrite=opts.overwrite,
        colour=reader.info.colour,
        sample_aspect=reader.info.sample_aspect,
        subtitles=streams.subtitles,
        tags=streams.tags,
        video_tags=streams.video_tags,
        chapters=streams.chapters,
        attachments=streams.attachments,
    )
    with writer:
        faces = write_frames(
            frames_in_order(reader, (timeline.source_index(i) for i in range(timeline.total_frames)), spool, "planes"),
            timeline.total_frames,
            redraw,
            writer,
            DubPassSettings(job.batch_size, opts.overlap, job.render_workers),
            timings,
            None if job.progress is None else partial(job.progress, "dub"),
        )
        t0 = time.perf_counter()
    add_time(timings, "encode", t0)  # flushing the encoder and the audio
    streams.left_out = writer.left_out
    return faces
