"""The first pass over a video: track the face in every frame and keep only what the dub needs.

Per frame that is a crop transform, the 131 model points in crop units and the mouth opening (about 1 KB); the
images themselves are not kept, except a bounded pool of reference crops (one per mouth-opening bin), from which the
renderer's references are chosen once the whole video has been seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from dubber.face.aligner import FaceAligner, Similarity
from dubber.face.landmarks import ALL_INDICES, mouth_opening
from dubber.face.speaking_mouths import photo_references
from dubber.face.tracker import FaceTracker, PreparedFrame, TrackedFace
from dubber.media.heap import HeapTrimmer
from dubber.media.video_reader import Frame, VideoReader
from dubber.models.reference_choice import spread_references
from dubber.pipeline.frame_source import FrameSpool
from dubber.pipeline.overlap import Consumer, Prefetcher
from dubber.pipeline.person_references import LandmarkReferences, PersonReferences
from dubber.pipeline.reference_pool import YAW_BINS, YAW_STEP, PoolEntry, ReferencePool

__all__ = ["YAW_BINS", "YAW_STEP", "PoolEntry", "ReferencePool", "VideoTrack", "analyse_video", "observe"]

_ALL = np.asarray(ALL_INDICES)
# Frames turned further than this are tracked and dubbed, but not used as references (the frontal crop is poor).
MAX_REFERENCE_YAW, MAX_REFERENCE_PITCH = 40.0, 35.0
# The side of a reference's detail crop at most: 4x the 128 px crop, a 1080p close-up's face (768 KB a pool entry).
DETAIL_CROP_MAX = 512


@dataclass
class VideoTrack:
    """What the analysis pass found, per source frame."""

    times: np.ndarray  # (N,) seconds
    has_face: np.ndarray  # (N,) bool
    transforms: np.ndarray  # (N, 4) Similarity vectors (NaN without a face)
    points: np.ndarray  # (N, 131, 2) unit-crop model points (NaN without a face)
    opening: np.ndarray  # (N,) mouth opening (NaN without a face)
    frontal: np.ndarray  # (N,) a face within the reference head-turn limits
    yaw: np.ndarray  # (N,) degrees, the head turned left or right (NaN without a face)
    pool: ReferencePool
    seconds: dict[str, float] = field(default_factory=dict)  # decode, track
    most_faces: int = 0  # the most faces found in one frame (detection runs where the face is not being tracked)
    segments: int = 1  # trackers that ran at once, each on its segment of the video (parallel_tracking.py)
    aspect: float = 1.0  # a frame pixel's width over its height, which every transform shares (anamorphic video)
    runs: np.ndarray | None = None  # (N,) per frame its run's first frame (-1 without a face): ``identity``

    def transform(self, i: int) -> Similarity:
        """Frame ``i``'s frame -> crop similarity (NaN without a face)."""
        return Similarity(*self.transforms[i], aspect=self.aspect)

    @property
    def frames(self) -> int:
        return len(self.times)

    def frame_rate(self, still: float = 25.0) -> float:
        """Frames per second from the frame times (``still`` for a single frame)."""
        return 1.0 / float(np.median(np.diff(self.times))) if self.frames > 1 else float(still)

    def filled_index(self) -> np.ndarray:
        """(N,) for each frame the nearest frame with a face (itself when it has one): windows need every frame's
        points, and an index costs 8 bytes a frame where a copy of the points costs 1 KB."""
        good = np.flatnonzero(self.has_face)
        idx = np.arange(self.frames)
        if len(good) == 0 or len(good) == self.frames:
            return idx
        after = good[np.clip(np.searchsorted(good, idx), 0, len(good) - 1)]
        before = good[np.clip(np.searchsorted(good, idx) - 1, 0, len(good) - 1)]
        return np.where(np.abs(before - idx) < np.abs(after - idx), before, after)

    def filled_points(self) -> np.ndarray:
        """Points with face-less frames taken from the nearest frame with a face."""
        return self.points[self.filled_index()]

    def identity(self) -> np.ndarray:
        """(N,) who each frame shows (``dubber.face.identities``; -1: no face, or not told)."""
        if self.runs is None:
            return np.where(self.has_face, 0, -1)
        of_run = self.pool.identities.of_run
        return np.array([of_run.get(int(r), -1) if r >= 0 else -1 for r in self.runs], np.int64)

    def landmark_references(self, count: int, person: int | None = None) -> np.ndarray:
        """(count, 131, 2) reference point sets spread over the speaker's mouth openings (IP_LAP), from the frames
        of ``person`` (the person seen longest by default); a photo's (one frame with a face) are its own face at
        the typical openings of speech (``photo_references``)."""
        if self.frames == 1 and self.has_face[0]:
            return photo_references(self.points[0], count)
        if person is None:
            person = self.pool.identities.main()
        theirs = self.identity() == person if self.pool.identities.looks else self.has_face
        cands = np.flatnonzero(self.frontal & theirs)
        if len(cands) == 0:
            cands = np.flatnonzero(self.frontal)
        if len(cands) == 0:
            cands = np.flatnonzero(self.has_face)
        return self.points[spread_references(np.nan_to_num(self.opening), cands, count, None)]

    def person_order(self) -> list[int]:
        """The identities told apart, the person seen in the most frames first (``--person`` counts them so)."""
        return self.pool.identities.ranked()

    def references_by_person(self, count: int) -> LandmarkReferences:
        """The completer's references: where two or more people were told apart, a set per person and each frame's
        person's set for its plan (``person_references``); else ``landmark_references``."""
        order = self.person_order()
        if len(order) < 2:
            return self.landmark_references(count)
        sets = np.stack([self.landmark_references(count, k) for k in order])
        rank = {k: r for r, k in enumerate(order)}
        of_frame = np.array([rank.get(int(k), 0) for k in self.identity()], np.int64)
        return PersonReferences(sets, of_frame[self.filled_index()])

    def person_frames(self, rank: int = 0) -> np.ndarray:
        """(N,) the frames with a face of the person ranked ``rank`` by the frames they are seen in (0: the most;
        every frame with a face is person 0's where fewer than two people were told apart)."""
        order = self.person_order()
        if len(order) < 2:
            return self.has_face & (rank == 0)
        if rank >= len(order):
            return np.zeros(self.frames, bool)
        return self.identity() == order[rank]


def analyse_video(
    reader: VideoReader,
    tracker: FaceTracker,
    aligner: FaceAligner,
    *,
    spool: FrameSpool | None = None,
    progress: Callable[[int], None] | None = None,
    overlap: bool = False,
) -> VideoTrack:
    """Track the face in every frame of ``reader``; ``overlap``: decode (and ``tracker.prepare``) in a thread ahead
    of the tracker, and keep each tracked frame (``observe``, the spool) in a thread behind it, so that the tracker,
    which must see the frames one after another, does nothing else."""
    seconds = {"decode": 0.0, "track": 0.0}
    with ExitStack() as stack:
        # A spooled frame is written again: kept as decoded planes too, for the output to write as it does the rest.
        frames = _timed(reader.frames("rgb" if spool is None else "both"), seconds)
        if not overlap:
            return _track_frames(
                ((f, None) for f in frames), reader.frame_count, tracker, aligner, spool, progress, seconds
            )
        prepared = stack.enter_context(
            Prefetcher(((f, tracker.prepare(f)) for f in frames), depth=4, name="analyse-decode")
        )
        return _track_frames(prepared, reader.frame_count, tracker, aligner, spool, progress, seconds, behind=True)


def _timed(frames: Iterable[Frame], seconds: dict[str, float]) -> Iterator[Frame]:
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        frame = next(it, None)
        seconds["decode"] += time.perf_counter() - t0
        if frame is None:
            return
        yield frame


def _track_frames(
    frames: Iterable[tuple[Frame, PreparedFrame | None]],
    expected: int,
    tracker: FaceTracker,
    aligner: FaceAligner,
    spool: FrameSpool | None,
    progress: Callable[[int], None] | None,
    seconds: dict[str, float],
    *,
    behind: bool = False,
) -> VideoTrack:
    """``frames``: each with its ``tracker.prepare`` or None; ``behind``: what is kept of a tracked frame is kept in
    a thread of its own, in order (the tracker's next frame does not depend on it)."""
    rows = _FrameRows(expected)
    pool = ReferencePool()
    trim = HeapTrimmer()

    def keep(item: tuple[Frame, TrackedFace | None, bool, bool]) -> None:
        frame, face, new_run, cut = item
        if spool is not None:
            spool.offer(frame.index, frame.image if frame.planes is None else frame.planes)
        rows.add(*observe(frame, face, aligner, pool, new_run, cut))
        trim()

    keeper = Consumer(keep, depth=2, name="analyse-keep") if behind else None
    hand_on = keep if keeper is None else keeper.submit
    try:
        for tracked, (frame, prepared) in enumerate(frames, 1):
            t0 = time.perf_counter()
            step = tracker.step(frame, prepared)
            hand_on((frame, step.face, step.reacquired, step.scene_cut))
            seconds["track"] += time.perf_counter() - t0
            if progress is not None:
                progress(tracked)
        if keeper is not None:
            keeper.finish()
    except BaseException:
        if keeper is not None:
            keeper.close()
        raise
    track = rows.track(pool, dict(seconds))
    track.most_faces, track.aspect = tracker.most_faces, tracker.options.pixel_aspect
    return track


Row = tuple[float, np.ndarray | None, np.ndarray | None, float, bool, float, int]


def observe(
    frame: Frame,
    face: TrackedFace | None,
    aligner: FaceAligner,
    pool: ReferencePool,
    new_run: bool = False,
    cut: bool = False,
) -> Row:
    """What the track keeps of one frame (``_FrameRows.add``'s arguments); the frame is offered to ``pool``;
    ``new_run``: the tracker acquired the face afresh on it (``TrackStep.reacquired``); ``cut``: the tracker found
    a scene cut on it (``TrackStep.scene_cut``)."""
    if cut:
        pool.saw_cut()
    if face is None:
        return frame.time, None, None, np.nan, False, np.nan, -1
    if new_run or pool.current_run < 0:
        pool.start_run(frame.index)
    unit = aligner.to_crop(face.points[_ALL], face.transform)
    yaw, pitch, _ = face.angles
    ok = abs(yaw) <= MAX_REFERENCE_YAW and abs(pitch) <= MAX_REFERENCE_PITCH
    o = float(mouth_opening(face.points))
    # Made only if the pool keeps the frame.
    crop = partial(aligner.crop, frame.image, face.transform)
    detail = partial(aligner.detail_crop, frame.image, face.transform, DETAIL_CROP_MAX)
    pool.offer(frame.index, o, (yaw, pitch), ok, crop, unit, detail)
    return frame.time, face.transform.as_vector(), unit, o, ok, yaw, pool.current_run


class _FrameRows:
    """The per-frame arrays of a track, filled in place (sized from the container's frame count, grown if it
    under-declares) rather than built from lists: a list of per-frame arrays costs twice their size at the end.

    The arrays are allocated empty and every row is written when its frame arrives, so a container that declares
    more frames than it holds costs address space, not memory (untouched pages are never made resident)."""

    _MOST_AT_FIRST = 1 << 20  # frames (11.6 hours at 25 fps): beyond a declared count this large, grow as they come

    def __init__(self, expected: int) -> None:
        self.count = 0
        self.arrays = self._empty(min(max(16, int(expected)), self._MOST_AT_FIRST))

    @staticmethod
    def _empty(n: int) -> dict[str, np.ndarray]:
        return {
            "times": np.empty(n, np.float64),
            "has_face": np.empty(n, bool),
            "transforms": np.empty((n, 4)),
            "points": np.empty((n, len(_ALL), 2), np.float32),
            "opening": np.empty(n, np.float32),
            "frontal": np.empty(n, bool),
            "yaw": np.empty(n, np.float32),
            "runs": np.empty(n, np.int64),
        }

    def add(
        self,
        time: float,
        transform: np.ndarray | None,
        points: np.ndarray | None,
        opening: float,
        frontal: bool,
        yaw: float,
        run: int = -1,
    ) -> None:
        i, a = self.count, self.arrays
        if i == len(a["times"]):
            grown = self._empty(2 * i)
            for k, v in a.items():
                grown[k][:i] = v
            self.arrays = a = grown
        a["times"][i], a["opening"][i], a["frontal"][i], a["has_face"][i] = time, opening, frontal, points is not None
        a["yaw"][i], a["runs"][i] = yaw, run
        a["transforms"][i] = np.nan if transform is None else transform
        a["points"][i] = np.nan if points is None else points
        self.count += 1

    def track(self, pool: ReferencePool, seconds: dict[str, float]) -> VideoTrack:
        n = self.count
        pool.end_run()  # the last run's identity
        return VideoTrack(**{k: v[:n] for k, v in self.arrays.items()}, pool=pool, seconds=seconds)
