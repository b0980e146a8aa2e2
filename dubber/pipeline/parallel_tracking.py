"""Pass 1 with several trackers at once, on a host with cores to spare (a GPU machine's 16, where the models wait
for pass 1): the video cut into consecutive segments, each tracked by its own tracker in its own thread.

MediaPipe's tracker follows the face from frame to frame (its region of interest, the One-Euro filters), so a
segment's tracker first tracks the second before its segment and throws that away: by the segment's first frame
its filters have settled where one tracker run from the start would be (the transform's filter forgets within
about a quarter of a second). Each worker decodes the video with its own reader from the start, skipping the
frames before its warm-up: decoding is a fraction of tracking's cost, and no seeking is needed, so the frame
indices are the sequential reader's. Memory stays flat: each worker holds one frame. The segments' rows are joined
in order and their reference pools merged (``ReferencePool.merge``: each segment's runs told in order, after the
earlier segments', so that the people are those one tracker would have told).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dubber.face.aligner import FaceAligner
from dubber.face.tracker import FaceTracker
from dubber.media.heap import HeapTrimmer
from dubber.media.video_reader import VideoReader
from dubber.pipeline.analysis import ReferencePool, Row, VideoTrack, _FrameRows, observe
from dubber.pipeline.frame_source import FrameSpool

WARM_UP_SECONDS = 1.0  # tracked before a segment and thrown away: the tracker settles
MIN_SEGMENT_SECONDS = 4.0  # a segment shorter than this does not pay for a tracker's start-up
CORES_PER_TRACKER = 4  # MediaPipe's graph runs its own threads
MOST_TRACKERS = 4


def tracking_workers(cores: int, frames: int, fps: float) -> int:
    """Trackers for pass 1: one per ``CORES_PER_TRACKER`` cores from 8 cores on, at most ``MOST_TRACKERS``, each
    with a segment of at least ``MIN_SEGMENT_SECONDS``; 1 (one tracker, the sequential pass) below that."""
    if cores < 2 * CORES_PER_TRACKER:
        return 1
    by_length = int(frames / (MIN_SEGMENT_SECONDS * max(fps, 1.0)))
    return max(1, min(MOST_TRACKERS, cores // CORES_PER_TRACKER, by_length))


class _Segments:
    """The workers' shared state: where each segment starts, progress, and a stop flag for errors."""

    def __init__(self, frames: int, workers: int, progress: Callable[[int], None] | None) -> None:
        bounds = [round(k * frames / workers) for k in range(workers + 1)]
        # The last segment runs to the end: a container may declare fewer frames than it holds.
        self.spans = [(bounds[k], bounds[k + 1] if k < workers - 1 else None) for k in range(workers)]
        self.stop = threading.Event()
        self._progress, self._done, self._lock = progress, 0, threading.Lock()

    def tracked(self) -> None:
        with self._lock:
            self._done += 1
            if self._progress is not None:
                self._progress(self._done)


def _track_segment(
    reader: VideoReader,
    make_tracker: Callable[[], FaceTracker],
    aligner: FaceAligner,
    span: tuple[int, int | None],
    warm: int,
    shared: _Segments,
    spool: FrameSpool | None,
) -> tuple[list[Row], ReferencePool, dict[str, float], int, float]:
    start, stop = span
    rows: list[Row] = []
    pool = ReferencePool.segment()
    seconds = {"decode": 0.0, "track": 0.0}
    trim = HeapTrimmer()
    segment = VideoReader(reader.path, constant_rate=reader.constant_rate, threads=reader.threads, info=reader.media)
    frames = segment.frames("rgb" if spool is None else "both")  # a spooled frame is kept as decoded planes too
    try:
        with make_tracker() as tracker:
            while not shared.stop.is_set():
                t0 = time.perf_counter()
                frame = next(frames, None)
                seconds["decode"] += time.perf_counter() - t0
                if frame is None or (stop is not None and frame.index >= stop):
                    break
                if frame.index < start - warm:
                    continue
                t0 = time.perf_counter()
                step = tracker.step(frame)
                if frame.index >= start:
                    if spool is not None:
                        spool.offer(frame.index, frame.image if frame.planes is None else frame.planes)
                    rows.append(observe(frame, step.face, aligner, pool, step.reacquired, step.scene_cut))
                    shared.tracked()
                trim()
                seconds["track"] += time.perf_counter() - t0
            most_faces, aspect = tracker.most_faces, tracker.options.pixel_aspect
    finally:
        frames.close()  # the reader's container, now rather than when collected
    return rows, pool, seconds, most_faces, aspect


def analyse_in_segments(
    reader: VideoReader,
    make_tracker: Callable[[], FaceTracker],
    aligner: FaceAligner,
    workers: int,
    *,
    spool: FrameSpool | None = None,
    progress: Callable[[int], None] | None = None,
) -> VideoTrack:
    """``analysis.analyse_video`` with ``workers`` trackers (``make_tracker`` makes each; the caller closes what
    they hold) on consecutive segments of ``reader``'s video."""
    shared = _Segments(reader.frame_count, workers, progress)
    warm = max(1, round(WARM_UP_SECONDS * float(reader.fps)))

    def run(span: tuple[int, int | None]):
        try:
            return _track_segment(reader, make_tracker, aligner, span, warm, shared, spool)
        except BaseException:
            shared.stop.set()  # the other segments stop at their next frame
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analyse-segment") as pool_of_threads:
        futures = [pool_of_threads.submit(run, span) for span in shared.spans]
    results = [f.result() for f in futures]  # the first segment's error, in order, is raised
    rows = _FrameRows(reader.frame_count)
    pool = ReferencePool()
    seconds = {"decode": 0.0, "track": 0.0}
    for segment_rows, segment_pool, segment_seconds, _, _ in results:
        for row in segment_rows:
            rows.add(*row)
        pool.merge(segment_pool)
        for k, v in segment_seconds.items():
            seconds[k] += v
    track = rows.track(pool, seconds)
    track.most_faces, track.aspect = max(r[3] for r in results), results[0][4]
    track.segments = workers
    return track
