"""A renderer training pack: a prepared cache cut down to what renderer training reads, within a size limit, for a
machine that can only be sent so much at a time (docs/GPU.md "Training there").

Per clip, at most ``frames_per_clip`` usable frames spread over it, picked as the trainer's ``max_frames_per_clip``
picks them; the other frames stay in the clip's timeline, flagged without a face, so the kept frames keep their
positions (the trainer's reference distances read them) and a crop video that repeats the last kept crop over them
costs next to nothing. Its ``track.npz`` holds the 131 points the renderer reads for the kept frames (the mesh's
other points are NaN, which compresses to nothing), no frame points, transforms or audio features: a pack trains
and evaluates the renderer, not the landmark completer (its clips say ``has_audio`` False). Speakers take turns, so
a limit that cuts the pack short leaves every speaker in it. The pack is itself a prepared cache: ``dub train
renderer --data PACK`` and ``dub eval renderer --data PACK`` read it as they read ``dub prep``'s folder.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from dubber.data.cache import ClipTrack, PrepCache
from dubber.data.prep import MANIFEST_COLUMNS, MANIFEST_NAME
from dubber.data.prep_clip import FLAG_NAMES, FLAG_NO_FACE, ClipRecord, clip_dir
from dubber.data.render_clips import read_crops
from dubber.errors import InputError
from dubber.face.landmarks import ALL_INDICES
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.video_writer import VideoWriter

PACK_NAME = "pack.json"
_ALL = np.asarray(ALL_INDICES)


@dataclass
class PackSummary:
    pack: str
    clips: int
    speakers: int
    frames: int  # kept frames, all clips
    bytes: int
    limit_bytes: int
    left_out: int  # clips that did not fit under the limit
    frames_per_clip: int
    splits: list[str]
    parts: int = 1
    part: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def kept_frames(track: ClipTrack, frames_per_clip: int, min_gap: int = 5) -> np.ndarray | None:
    """The usable frames a pack keeps of a clip, spread over it (``load_render_clips``' choice for ``max_frames``),
    or None when the clip could not serve renderer training (no two usable frames ``min_gap`` apart)."""
    usable = np.flatnonzero(track.usable)
    if len(usable) < 2 or usable[-1] - usable[0] < min_gap:
        return None
    if len(usable) > frames_per_clip:
        usable = usable[np.round(np.linspace(0, len(usable) - 1, frames_per_clip)).astype(int)]
    return usable


def speaker_turns(records: list[ClipRecord]) -> list[ClipRecord]:
    """Each speaker's first clip, then each one's second, ...: cut anywhere, every speaker so far is in."""
    by_speaker: dict[str, list[ClipRecord]] = {}
    for rec in sorted(records, key=lambda r: (r.speaker, r.clip_id)):
        by_speaker.setdefault(rec.speaker, []).append(rec)
    rounds = max((len(v) for v in by_speaker.values()), default=0)
    return [clips[k] for k in range(rounds) for clips in by_speaker.values() if k < len(clips)]


def write_render_pack(
    cache: PrepCache,
    out: str | Path,
    *,
    limit_mib: float = 56.0,
    frames_per_clip: int = 8,
    splits: tuple[str, ...] = ("dev", "train", "video_only"),
    size: int = 128,
    crf: int = 12,
    parts: int = 1,
    part: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PackSummary:
    """Write the pack of ``cache`` (its clips of ``splits``, speakers taking turns) into the new folder ``out``;
    a clip that would take it past ``limit_mib`` is left out. ``parts`` > 1: every ``parts``-th clip of that
    order from the ``part``-th on, so that packs sent in turn hold different clips of every speaker."""
    out = Path(out)
    if out.exists():
        raise InputError(out, "exists already; a pack is written into a new folder")
    if frames_per_clip < 2:
        raise InputError(None, f"frames_per_clip={frames_per_clip}: a clip needs 2 frames to reference one another")
    if not 0 <= part < parts:
        raise InputError(None, f"part={part} of parts={parts}: the part counts from 0 to parts - 1")
    limit = int(limit_mib * (1 << 20))
    todo = speaker_turns([rec for split in splits for rec in cache.records(split)])[part::parts]
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "clips").mkdir(parents=True)
    records: list[ClipRecord] = []
    used, left_out = 4096, 0  # the manifest and pack.json, generously
    for n, rec in enumerate(todo):
        if progress is not None:
            progress(n, len(todo))
        if size not in rec.sizes:
            continue
        track = cache.load(rec)
        keep = kept_frames(track, frames_per_clip)
        if keep is None:
            continue
        folder = clip_dir(partial, rec.clip_id)
        packed = _write_clip(cache, rec, track, keep, folder, size, crf)
        spent = sum(f.stat().st_size for f in folder.iterdir())
        if used + spent > limit:
            shutil.rmtree(folder)
            left_out += 1
            continue
        used += spent
        records.append(packed)
    if progress is not None:
        progress(len(todo), len(todo))
    _write_manifest(partial, records)
    summary = PackSummary(
        str(out),
        len(records),
        len({r.speaker for r in records}),
        sum(r.usable_frames for r in records),
        used,
        limit,
        left_out,
        frames_per_clip,
        list(splits),
        parts,
        part,
    )
    (partial / PACK_NAME).write_text(json.dumps({**summary.to_dict(), "source": str(cache.root)}, indent=1))
    os.replace(partial, out)
    return summary


def _write_clip(
    cache: PrepCache, rec: ClipRecord, track: ClipTrack, keep: np.ndarray, folder: Path, size: int, crf: int
) -> ClipRecord:
    folder.mkdir(parents=True)
    crops = read_crops(cache.crops_path(rec, size), keep)
    keep = keep[: len(crops)]  # a short crops file: what both hold
    frames = len(track)
    shown = np.searchsorted(keep, np.arange(frames), side="right") - 1  # the last kept crop at or before each frame
    options = VideoEncodeOptions(crf=crf, preset="veryfast", pix_fmt="yuv444p", threads=1)
    with VideoWriter(
        folder / f"crops_{size}.mp4",
        width=size,
        height=size,
        fps=Fraction(rec.fps).limit_denominator(1001),
        options=options,
    ) as w:
        for i in range(frames):
            w.write(crops[max(int(shown[i]), 0)])
    flags = track.flags.copy()
    dropped = np.ones(frames, bool)
    dropped[keep] = False
    flags[dropped] |= FLAG_NO_FACE
    points = np.full(track.crop_points.shape, np.nan, np.float16)
    points[keep[:, None], _ALL[None]] = track.crop_points[keep][:, _ALL]
    np.savez_compressed(
        folder / "track.npz",
        times=track.times,
        flags=flags,
        crop_points=points,
        frame_points=np.full(track.frame_points.shape, np.nan, np.float32),
        transforms=np.full(track.transforms.shape, np.nan),
        angles=np.where(dropped[:, None], 0.0, track.angles).astype(np.float32),
        mel=np.zeros((0, 80), np.float16),
    )
    packed = replace(
        rec,
        face_frames=len(keep),
        usable_frames=len(keep),
        has_audio=False,
        sizes=[size],
        flag_counts={name: int(np.sum((flags & bit) != 0)) for bit, name in FLAG_NAMES.items()},
    )
    (folder / "meta.json").write_text(json.dumps(packed.to_dict(), indent=1))
    return packed


def _write_manifest(root: Path, records: list[ClipRecord]) -> None:
    with open(root / MANIFEST_NAME, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow(r.to_dict())
