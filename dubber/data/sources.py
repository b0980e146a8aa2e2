"""What ``dub prep`` reads: a folder of clips or a manifest CSV, as a list of clips with split and speaker."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from dubber.errors import InputError

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".m4v", ".avi", ".webm", ".mpg", ".mpeg"}
KNOWN_SPLITS = ("train", "dev", "test", "video_only", "wild")


@dataclass(frozen=True)
class ClipSource:
    clip_id: str  # unique, filesystem-safe: the clip's folder name in the cache
    path: Path
    split: str
    speaker: str


def clip_id_for(relative: str) -> str:
    stem = relative.rsplit(".", 1)[0] if "." in Path(relative).name else relative
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__").replace("\\", "__")).strip("_")


def _dev_by_hash(speaker: str, fraction: float) -> bool:
    # A fixed function of the name, so a speaker's split never changes between runs or machines.
    h = int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < fraction


def read_manifest(path: Path, splits: set[str] | None = None) -> list[ClipSource]:
    """Rows of a CSV with at least ``path`` (relative to the CSV's folder or absolute); ``split`` and ``speaker``
    are kept when present (``speaker`` defaults to the clip's folder name, ``split`` to ``train``)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the manifest ({exc})") from None
    if not rows or "path" not in rows[0]:
        raise InputError(path, "the manifest needs a header row with a 'path' column")
    out: list[ClipSource] = []
    for row in rows:
        rel = (row.get("path") or "").strip()
        if not rel:
            continue
        clip = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        split = (row.get("split") or "train").strip()
        if splits and split not in splits:
            continue
        speaker = (row.get("speaker") or "").strip() or clip.parent.name
        out.append(ClipSource(clip_id_for(rel), clip, split, speaker))
    return out


def scan_folder(root: Path, splits: set[str] | None = None, dev_fraction: float = 0.1) -> list[ClipSource]:
    """Every video under ``root``. The speaker is the clip's folder name. A top folder named after a split
    (train/, dev/, ...) gives the split; otherwise speakers are split by a hash of their name."""
    out: list[ClipSource] = []
    for clip in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()):
        rel = clip.relative_to(root)
        speaker = clip.parent.name if clip.parent != root else clip.stem
        top = rel.parts[0] if len(rel.parts) > 1 else ""
        if top in KNOWN_SPLITS:
            split = top
        else:
            split = "dev" if _dev_by_hash(speaker, dev_fraction) else "train"
        if splits and split not in splits:
            continue
        out.append(ClipSource(clip_id_for(rel.as_posix()), clip, split, speaker))
    return out


def read_sources(source: str | Path, splits: set[str] | None = None, dev_fraction: float = 0.1) -> list[ClipSource]:
    p = Path(source)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    if p.is_dir():
        clips = scan_folder(p, splits, dev_fraction)
        if not clips:
            raise InputError(p, "no video files found (looked for " + ", ".join(sorted(VIDEO_EXTENSIONS)) + ")")
        return clips
    if p.suffix.lower() != ".csv":
        raise InputError(p, "expected a folder of clips or a manifest .csv")
    clips = read_manifest(p, splits)
    if not clips:
        raise InputError(p, "the manifest lists no clips" + (f" in splits {sorted(splits)}" if splits else ""))
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(p, f"two rows give the same clip id {dup!r}")
    return clips


def first_per_speaker(clips: list[ClipSource], count: int) -> list[ClipSource]:
    """The first ``count`` clips of each speaker, in order (``count`` 0: all of them)."""
    if not count:
        return clips
    seen: dict[str, int] = {}
    kept = []
    for clip in clips:
        seen[clip.speaker] = seen.get(clip.speaker, 0) + 1
        if seen[clip.speaker] <= count:
            kept.append(clip)
    return kept
