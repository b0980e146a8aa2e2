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

_ALL = np.asarray(ALL_INDICES)
# Frames turned further than this are tracked and dubbed, but not used as references (the frontal crop is poor).
MAX_REFERENCE_YAW, MAX_REFERENCE_PITCH = 40.0, 35.0
# The side of a reference's detail crop at most: 4x the 128 px crop, a 1080p close-up's face (768 KB a pool entry).
DETAIL_CROP_MAX = 512
# The reference pool's head-turn bins: centred on 0, +-15 and +-30 degrees of yaw.
YAW_STEP, YAW_BINS = 15.0, 2


@dataclass
class PoolEntry:
    opening: float
    turn: float  # degrees from the entry's pose bin (lower: kept)
    index: int  # the source frame
    yaw: float
    crop: np.ndarray  # (S, S, 3) uint8
    points: np.ndarray  # (131, 2) unit crop
    detail: np.ndarray | None  # the same square at the face's resolution, when larger than the crop


@dataclass
class ReferencePool:
    """Reference crops binned by mouth opening and head turn: per bin the frame nearest the bin's turn, with the same
    square at the face's resolution when the face is larger than the crop (its detail, for the compositor).

    Turn bins (``YAW_STEP`` degrees wide, centred on frontal) let a turned target be hinted by a frame turned the
    same way: a frontal hint carried onto a face turned 20-30 degrees folds under the warp (docs/RENDERER.md
    "Pose")."""

    bins: int = 96  # opening bins per turn bin
    max_opening: float = 0.72
    entries: dict[tuple[int, int], PoolEntry] = field(default_factory=dict)

    def offer(
        self,
        index: int,
        opening: float,
        angles: tuple[float, float],
        usable: bool,
        crop: Callable[[], np.ndarray],
        points: np.ndarray,
        detail: Callable[[], np.ndarray | None] | None = None,
    ) -> None:
        """Frame ``index`` with its (yaw, pitch); ``usable``: within the reference head-turn limits (others only
        fill a bin nothing else fills). ``crop`` and ``detail`` are called only if the frame is kept."""
        yaw, pitch = angles
        pose = int(np.clip(round(yaw / YAW_STEP), -YAW_BINS, YAW_BINS))
        key = (pose, int(np.clip(opening / self.max_opening * self.bins, 0, self.bins - 1)))
        turn = abs(yaw - pose * YAW_STEP) + abs(pitch) + (0.0 if usable else 1000.0)
        held = self.entries.get(key)
        if held is None or turn < held.turn:
            image = detail() if detail is not None else None
            self.entries[key] = PoolEntry(opening, turn, index, float(yaw), crop(), points, image)

    def merge(self, later: ReferencePool) -> None:
        """Take ``later``'s entries, a pool of frames that all come after this one's: the same pool as one offered
        every frame in order (a bin keeps its first frame of least turn)."""
        for key, entry in later.entries.items():
            held = self.entries.get(key)
            if held is None or entry.turn < held.turn:
                self.entries[key] = entry

    def __len__(self) -> int:
        return len(self.entries)

    def held(self) -> list[PoolEntry]:
        """Every entry, frontal first, each pose by opening."""
        return [self.entries[k] for k in sorted(self.entries, key=lambda k: (abs(k[0]), k))]

    def choose(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(crops (K, S, S, 3) uint8, points (K, 131, 2), frame indices) spread over the opening range, from the
        frontal entries when there are any."""
        held = [e for e in self.held() if e.turn < 1000.0]
        frontal = [e for e in held if abs(e.yaw) < YAW_STEP / 2] or held or self.held()
        opening = np.array([e.opening for e in frontal], np.float32)
        pick = spread_references(opening, np.arange(len(frontal)), count, None)
        return (
            np.stack([frontal[i].crop for i in pick]),
            np.stack([frontal[i].points for i in pick]),
            np.array([frontal[i].index for i in pick]),
        )


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

    def landmark_references(self, count: int) -> np.ndarray:
        """(count, 131, 2) reference point sets spread over the speaker's mouth openings (IP_LAP); a photo's (one
        frame with a face) are its own face at the typical openings of speech (``photo_references``)."""
        if self.frames == 1 and self.has_face[0]:
            return photo_references(self.points[0], count)
        cands = np.flatnonzero(self.frontal)
        if len(cands) == 0:
            cands = np.flatnonzero(self.has_face)
        return self.points[spread_references(np.nan_to_num(self.opening), cands, count, None)]


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

    def keep(item: tuple[Frame, TrackedFace | None]) -> None:
        frame, face = item
        if spool is not None:
            spool.offer(frame.index, frame.image if frame.planes is None else frame.planes)
        rows.add(*observe(frame, face, aligner, pool))
        trim()

    keeper = Consumer(keep, depth=2, name="analyse-keep") if behind else None
    hand_on = keep if keeper is None else keeper.submit
    try:
        for tracked, (frame, prepared) in enumerate(frames, 1):
            t0 = time.perf_counter()
            hand_on((frame, tracker.step(frame, prepared).face))
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


Row = tuple[float, np.ndarray | None, np.ndarray | None, float, bool, float]


def observe(frame: Frame, face: TrackedFace | None, aligner: FaceAligner, pool: ReferencePool) -> Row:
    """What the track keeps of one frame (``_FrameRows.add``'s arguments); the frame is offered to ``pool``."""
    if face is None:
        return frame.time, None, None, np.nan, False, np.nan
    unit = aligner.to_crop(face.points[_ALL], face.transform)
    yaw, pitch, _ = face.angles
    ok = abs(yaw) <= MAX_REFERENCE_YAW and abs(pitch) <= MAX_REFERENCE_PITCH
    o = float(mouth_opening(face.points))
    # Made only if the pool keeps the frame.
    crop = partial(aligner.crop, frame.image, face.transform)
    detail = partial(aligner.detail_crop, frame.image, face.transform, DETAIL_CROP_MAX)
    pool.offer(frame.index, o, (yaw, pitch), ok, crop, unit, detail)
    return frame.time, face.transform.as_vector(), unit, o, ok, yaw


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
        }

    def add(
        self,
        time: float,
        transform: np.ndarray | None,
        points: np.ndarray | None,
        opening: float,
        frontal: bool,
        yaw: float,
    ) -> None:
        i, a = self.count, self.arrays
        if i == len(a["times"]):
            grown = self._empty(2 * i)
            for k, v in a.items():
                grown[k][:i] = v
            self.arrays = a = grown
        a["times"][i], a["opening"][i], a["frontal"][i], a["has_face"][i] = time, opening, frontal, points is not None
        a["yaw"][i] = yaw
        a["transforms"][i] = np.nan if transform is None else transform
        a["points"][i] = np.nan if points is None else points
        self.count += 1

    def track(self, pool: ReferencePool, seconds: dict[str, float]) -> VideoTrack:
        n = self.count
        return VideoTrack(**{k: v[:n] for k, v in self.arrays.items()}, pool=pool, seconds=seconds)
