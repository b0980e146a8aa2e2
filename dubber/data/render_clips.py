"""Renderer data from a prepared cache: per clip, aligned crops decoded into memory (at most ``max_frames`` spread
over the clip) with their 131 landmarks, and the frames far enough away to serve as its references.

Renderer training and evaluation both read clips this way; ``video_only`` clips count as renderer data.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np

from dubber.data.cache import PrepCache
from dubber.face.landmarks import ALL_INDICES

_ALL = np.asarray(ALL_INDICES)


@dataclass
class RenderClip:
    clip_id: str
    speaker: str
    split: str
    frame_index: np.ndarray  # (N,) positions in the clip of the kept frames
    crops: np.ndarray  # (N, S, S, 3) uint8
    points: np.ndarray  # (N, 131, 2) float32 unit crop coordinates

    def __len__(self) -> int:
        return len(self.frame_index)

    def reference_candidates(self, i: int, min_gap: int) -> np.ndarray:
        return np.flatnonzero(np.abs(self.frame_index - self.frame_index[i]) >= min_gap)


def read_crops(path, keep: np.ndarray) -> np.ndarray:
    """The frames at positions ``keep`` (sorted) of a crops video, as (len(keep), S, S, 3) uint8."""
    wanted = set(int(k) for k in keep)
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= keep[-1]:
                break
    return np.stack(out)


def load_render_clips(
    cache: PrepCache,
    splits: tuple[str, ...],
    *,
    size: int = 128,
    max_frames: int | None = None,
    min_gap: int = 5,
    per_speaker: int | None = None,
) -> list[RenderClip]:
    """Clips of ``splits`` with usable frames that have at least one reference ``min_gap`` frames away, at crop
    ``size`` (read from the nearest stored size at or above it, resized where it differs); at most ``per_speaker``
    clips of each speaker, counted before decoding so skipped clips cost nothing."""
    clips = []
    kept: dict[str, int] = {}
    for split in splits:
        for rec in cache.records(split):
            if per_speaker is not None and kept.get(rec.speaker, 0) >= per_speaker:
                continue
            track = cache.load(rec)
            usable = np.flatnonzero(track.usable)
            if len(usable) < 2 or usable[-1] - usable[0] < min_gap:
                continue
            if max_frames is not None and len(usable) > max_frames:
                usable = usable[np.round(np.linspace(0, len(usable) - 1, max_frames)).astype(int)]
            stored = sorted(rec.sizes or [128])
            source = next((s for s in stored if s >= size), stored[-1])
            crops = read_crops(cache.crops_path(rec, source), usable)
            if source != size:
                crops = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in crops])
            if len(crops) != len(usable):  # a short crops file: keep what both hold
                usable = usable[: len(crops)]
            points = track.crop_points[usable][:, _ALL].astype(np.float32)
            kept[rec.speaker] = kept.get(rec.speaker, 0) + 1
            clips.append(RenderClip(rec.clip_id, rec.speaker, split, usable, crops, points))
    return clips
