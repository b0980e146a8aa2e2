"""The first pass over a video: track the face in every frame and keep only what the dub needs.

Per frame that is a crop transform, the 131 model points in crop units and the mouth opening (about 1 KB); the
images themselves are not kept, except a bounded pool of reference crops (one per mouth-opening bin), from which the
renderer's references are chosen once the whole video has been seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from dubber.face.aligner import FaceAligner
from dubber.face.landmarks import ALL_INDICES, mouth_opening
from dubber.face.tracker import FaceTracker, TrackedFace
from dubber.media.heap import HeapTrimmer
from dubber.media.video_reader import VideoReader
from dubber.models.reference_choice import spread_references
from dubber.pipeline.frame_source import FrameSpool

N_POSE = 74
_ALL = np.asarray(ALL_INDICES)
# Frames turned further than this are tracked and dubbed, but not used as references (the frontal crop is poor).
MAX_REFERENCE_YAW, MAX_REFERENCE_PITCH = 40.0, 35.0


@dataclass
class ReferencePool:
    """At most one crop per mouth-opening bin: the most frontal frame seen with that opening."""

    bins: int = 24
    max_opening: float = 0.72
    entries: dict[int, tuple[float, float, int, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def offer(self, index: int, opening: float, turn: float, crop: Callable[[], np.ndarray], points: np.ndarray):
        b = int(np.clip(opening / self.max_opening * self.bins, 0, self.bins - 1))
        held = self.entries.get(b)
        if held is None or turn < held[1]:
            self.entries[b] = (opening, turn, index, crop(), points)

    def __len__(self) -> int:
        return len(self.entries)

    def choose(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(crops (K, S, S, 3) uint8, points (K, 131, 2), frame indices) spread over the opening range."""
        held = [self.entries[b] for b in sorted(self.entries)]
        opening = np.array([h[0] for h in held], np.float32)
        pick = spread_references(opening, np.arange(len(held)), count, None)
        return (np.stack([held[i][3] for i in pick]), np.stack([held[i][4] for i in pick]),
                np.array([held[i][2] for i in pick]))  # fmt: skip


@dataclass
class VideoTrack:
    """What the analysis pass found, per source frame."""

    times: np.ndarray  # (N,) seconds
    has_face: np.ndarray  # (N,) bool
    transforms: np.ndarray  # (N, 4) Similarity vectors (NaN without a face)
    points: np.ndarray  # (N, 131, 2) unit-crop model points (NaN without a face)
    opening: np.ndarray  # (N,) mouth opening (NaN without a face)
    frontal: np.ndarray  # (N,) a face within the reference head-turn limits
    pool: ReferencePool
    seconds: dict[str, float] = field(default_factory=dict)  # decode, track

    @property
    def frames(self) -> int:
        return len(self.times)

    def filled_points(self) -> np.ndarray:
        """Points with face-less frames taken from the nearest frame with a face (windows need every frame)."""
        good = np.flatnonzero(self.has_face)
        if len(good) == 0 or len(good) == self.frames:
            return self.points.copy()
        idx = np.arange(self.frames)
        after = good[np.clip(np.searchsorted(good, idx), 0, len(good) - 1)]
        before = good[np.clip(np.searchsorted(good, idx) - 1, 0, len(good) - 1)]
        nearest = np.where(np.abs(before - idx) < np.abs(after - idx), before, after)
        return self.points[nearest]

    def landmark_references(self, count: int) -> np.ndarray:
        """(count, 131, 2) reference point sets spread over the speaker's mouth openings (IP_LAP)."""
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
) -> VideoTrack:
    times, has_face, transforms, points, opening, frontal = [], [], [], [], [], []
    pool = ReferencePool()
    nan_points = np.full((len(_ALL), 2), np.nan, np.float32)
    decode_s = track_s = 0.0
    frames = iter(reader)
    trim = HeapTrimmer()
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        t1 = time.perf_counter()
        decode_s += t1 - t0
        if frame is None:
            break
        if spool is not None:
            spool.append(frame.image)
        face: TrackedFace | None = tracker.step(frame).face
        times.append(frame.time)
        has_face.append(face is not None)
        if face is None:
            transforms.append(np.full(4, np.nan))
            points.append(nan_points)
            opening.append(np.nan)
            frontal.append(False)
        else:
            unit = aligner.to_crop(face.points[_ALL], face.transform)
            yaw, pitch, _ = face.angles
            ok = abs(yaw) <= MAX_REFERENCE_YAW and abs(pitch) <= MAX_REFERENCE_PITCH
            o = float(mouth_opening(face.points))
            transforms.append(face.transform.as_vector())
            points.append(unit)
            opening.append(o)
            frontal.append(ok)
            turn = abs(yaw) + abs(pitch) + (0.0 if ok else 1000.0)  # turned frames only where nothing else is
            crop = partial(aligner.crop, frame.image, face.transform)  # made only if the pool keeps the frame
            pool.offer(frame.index, o, turn, crop, unit)
        trim()
        track_s += time.perf_counter() - t1
        if progress is not None:
            progress(len(times))
    return VideoTrack(
        times=np.asarray(times, np.float64),
        has_face=np.asarray(has_face, bool),
        transforms=np.asarray(transforms, np.float64).reshape(-1, 4),
        points=np.asarray(points, np.float32).reshape(-1, len(_ALL), 2),
        opening=np.asarray(opening, np.float32),
        frontal=np.asarray(frontal, bool),
        pool=pool,
        seconds={"decode": decode_s, "track": track_s},
    )
