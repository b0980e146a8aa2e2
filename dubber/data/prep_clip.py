"""Prepare one clip for training and evaluation: face track, aligned crops, landmarks, transforms, mel, flags.

Layout of ``<cache>/clips/<clip_id>/``:
  ``crops_<S>.mp4``  the aligned S x S crops (H.264 yuv444p crf 12; black where there is no face), one per frame
  ``track.npz``      per-frame arrays (see :data:`TRACK_ARRAYS`) and the clip's log-mel
  ``meta.json``      what was done; written last, so a clip with a ``meta.json`` is complete
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from dubber.audio import audio_features
from dubber.data.sources import ClipSource
from dubber.errors import DubberError, NoAudioStreamError
from dubber.face.aligner import FaceAligner
from dubber.face.landmarks import ALL_INDICES
from dubber.face.tracker import FaceTracker
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter

CACHE_VERSION = 1

# Per-frame quality flags (bits).
FLAG_NO_FACE = 1
FLAG_HEAD_TURN = 2  # |yaw| or |pitch| beyond the limits: the frontal crop is unreliable
FLAG_SCENE_CUT = 4
FLAG_SMALL_FACE = 8  # fewer pixels than the smallest crop: the crop is upsampled
FLAG_NAMES = {
    FLAG_NO_FACE: "no_face",
    FLAG_HEAD_TURN: "head_turn",
    FLAG_SCENE_CUT: "scene_cut",
    FLAG_SMALL_FACE: "small",
}

TRACK_ARRAYS = {
    "times": "(T,) float64 seconds from the video's start",
    "flags": "(T,) uint8 FLAG_* bits",
    "crop_points": "(T, 478, 2) float16 landmarks in unit crop coordinates (NaN without a face)",
    "frame_points": "(T, 131, 2) float32 the model points (ALL_INDICES) in frame pixels (NaN without a face)",
    "transforms": "(T, 4) float64 Similarity (cx, cy, scale, angle), frame -> unit crop (NaN without a face)",
    "angles": "(T, 3) float32 yaw, pitch, roll in degrees",
    "mel": "(M, 80) float16 log-mel of the clip's audio at 80 steps/s (0 rows without audio)",
}


@dataclass(frozen=True)
class PrepOptions:
    sizes: tuple[int, ...] = (128,)
    crf: int = 12
    max_yaw: float = 40.0
    max_pitch: float = 35.0
    min_face_frames: int = 8  # a clip with fewer usable frames is skipped


@dataclass
class ClipRecord:
    clip_id: str
    split: str
    speaker: str
    source: str
    status: str  # "ok" or "skipped"
    reason: str = ""
    frames: int = 0
    face_frames: int = 0
    usable_frames: int = 0  # a face, no head-turn flag
    fps: float = 0.0
    width: int = 0
    height: int = 0
    seconds: float = 0.0
    has_audio: bool = False
    sizes: list[int] = field(default_factory=list)
    flag_counts: dict[str, int] = field(default_factory=dict)
    prep_seconds: float = 0.0
    cache_version: int = CACHE_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClipRecord:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def clip_dir(cache: Path, clip_id: str) -> Path:
    return cache / "clips" / clip_id


def read_record(cache: Path, clip_id: str) -> ClipRecord | None:
    meta = clip_dir(cache, clip_id) / "meta.json"
    try:
        return ClipRecord.from_dict(json.loads(meta.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def is_done(cache: Path, source: ClipSource, options: PrepOptions) -> bool:
    rec = read_record(cache, source.clip_id)
    if rec is None or rec.cache_version != CACHE_VERSION:
        return False
    return rec.status == "skipped" or set(options.sizes) <= set(rec.sizes)


def _write_record(folder: Path, record: ClipRecord) -> None:
    tmp = folder / "meta.json.partial"
    tmp.write_text(json.dumps(record.to_dict(), indent=1))
    os.replace(tmp, folder / "meta.json")


def prepare_clip(source: ClipSource, cache: Path, options: PrepOptions, tracker: FaceTracker) -> ClipRecord:
    """Prepare ``source`` into the cache and return its record. Bad media becomes a skipped record, not an error."""
    t0 = time.perf_counter()
    folder = clip_dir(cache, source.clip_id)
    folder.mkdir(parents=True, exist_ok=True)
    record = ClipRecord(source.clip_id, source.split, source.speaker, str(source.path), status="ok")
    try:
        _prepare(source, folder, options, tracker, record)
    except DubberError as exc:
        record.status, record.reason = "skipped", str(exc).replace(str(source.path) + ": ", "")
        for stale in folder.glob("crops_*.mp4"):
            stale.unlink()
    record.prep_seconds = round(time.perf_counter() - t0, 3)
    _write_record(folder, record)
    return record


def _prepare(source: ClipSource, folder: Path, options: PrepOptions, tracker: FaceTracker, rec: ClipRecord) -> None:
    reader = VideoReader(source.path, constant_rate=True)
    rec.fps, rec.width, rec.height = float(reader.fps), reader.size[0], reader.size[1]
    aligners = {s: FaceAligner(s) for s in options.sizes}
    unit = FaceAligner(1)  # landmark coordinates in [0, 1] do not depend on the crop size
    encode = VideoEncodeOptions(crf=options.crf, preset="veryfast", pix_fmt="yuv444p", threads=1)
    writers = {
        s: VideoWriter(
            folder / f"crops_{s}.mp4", width=s, height=s, fps=Fraction(reader.fps), options=encode, overwrite=True
        ).open()
        for s in options.sizes
    }
    times, flags, crop_pts, frame_pts, transforms, angles = [], [], [], [], [], []
    nan478 = np.full((478, 2), np.nan, np.float32)
    smallest = min(options.sizes)
    tracker.reset()
    try:
        for step in tracker.track(reader):
            face = step.face
            f = FLAG_SCENE_CUT if step.scene_cut else 0
            times.append(step.frame.time)
            if face is None:
                f |= FLAG_NO_FACE
                crop_pts.append(nan478)
                frame_pts.append(np.full((len(ALL_INDICES), 2), np.nan, np.float32))
                transforms.append(np.full(4, np.nan))
                angles.append(np.zeros(3, np.float32))
                for s, w in writers.items():
                    w.write(np.zeros((s, s, 3), np.uint8))
            else:
                yaw, pitch, _ = face.angles
                if abs(yaw) > options.max_yaw or abs(pitch) > options.max_pitch:
                    f |= FLAG_HEAD_TURN
                if face.transform.scale < smallest:
                    f |= FLAG_SMALL_FACE
                crop_pts.append(unit.to_crop(face.points, face.transform))
                frame_pts.append(face.points[list(ALL_INDICES), :2].astype(np.float32))
                transforms.append(face.transform.as_vector())
                angles.append(np.asarray(face.angles, np.float32))
                for s, w in writers.items():
                    w.write(aligners[s].crop(step.frame.image, face.transform))
            flags.append(f)
        flags_arr = np.asarray(flags, np.uint8)
        rec.frames = len(flags_arr)
        rec.face_frames = int(np.sum((flags_arr & FLAG_NO_FACE) == 0))
        rec.usable_frames = int(np.sum((flags_arr & (FLAG_NO_FACE | FLAG_HEAD_TURN)) == 0))
        rec.seconds = rec.frames / rec.fps if rec.fps else 0.0
        rec.flag_counts = {name: int(np.sum((flags_arr & bit) != 0)) for bit, name in FLAG_NAMES.items()}
        if rec.frames == 0:
            raise _Skip("no frames decoded")
        if rec.face_frames == 0:
            raise _Skip("no face found in any frame")
        if rec.usable_frames < options.min_face_frames:
            raise _Skip(f"only {rec.usable_frames} usable face frames (need {options.min_face_frames})")
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    mel = np.zeros((0, 80), np.float16)
    if reader.media.audio is not None:
        try:
            mel = audio_features(source.path).mel.astype(np.float16)
            rec.has_audio = len(mel) > 0
        except NoAudioStreamError:
            pass
    tmp = folder / "track.partial.npz"
    np.savez(
        tmp,
        times=np.asarray(times, np.float64),
        flags=flags_arr,
        crop_points=np.asarray(crop_pts, np.float16),
        frame_points=np.asarray(frame_pts, np.float32),
        transforms=np.asarray(transforms, np.float64),
        angles=np.asarray(angles, np.float32),
        mel=mel,
    )
    os.replace(tmp, folder / "track.npz")
    rec.sizes = sorted(options.sizes)


class _Skip(DubberError):
    """A clip that decodes but gives nothing to train on."""
