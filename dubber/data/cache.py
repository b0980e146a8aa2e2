"""Read a prepared cache: its manifest of clips and each clip's per-frame arrays."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubber.audio import AudioFeatures
from dubber.data.prep import MANIFEST_NAME
from dubber.data.prep_clip import FLAG_HEAD_TURN, FLAG_NO_FACE, ClipRecord, clip_dir, read_record
from dubber.data.speech_cache import read_speech
from dubber.errors import InputError


@dataclass
class ClipTrack:
    """One prepared clip in memory (landmarks and mel only; crops stay in their video files)."""

    record: ClipRecord
    times: np.ndarray
    flags: np.ndarray
    crop_points: np.ndarray  # (T, 478, 2) float32, unit crop coordinates, NaN without a face
    frame_points: np.ndarray
    transforms: np.ndarray
    angles: np.ndarray
    mel: np.ndarray  # (M, 80) float32
    speech: np.ndarray | None = None  # (S, dims) speech-encoder features at 50 steps/s, when asked for and present

    @property
    def usable(self) -> np.ndarray:
        """Frames with a face and no extreme head turn."""
        return (self.flags & (FLAG_NO_FACE | FLAG_HEAD_TURN)) == 0

    @property
    def audio(self) -> AudioFeatures:
        return AudioFeatures(self.mel)

    def __len__(self) -> int:
        return len(self.times)


class PrepCache:
    """A folder written by ``dub prep``."""

    def __init__(self, root: str | Path, *, without_speakers: frozenset[str] = frozenset()) -> None:
        self.root = Path(root)
        manifest = self.root / MANIFEST_NAME
        if not manifest.is_file():
            raise InputError(self.root, f"not a prepared cache (no {MANIFEST_NAME}; run `dub prep` first)")
        with open(manifest, newline="") as f:
            self._rows = [r for r in csv.DictReader(f) if r["speaker"] not in without_speakers]

    def without(self, speakers: frozenset[str]) -> PrepCache:
        """The same cache with these speakers' clips left out (speakers a benchmark must keep unseen)."""
        return PrepCache(self.root, without_speakers=speakers) if speakers else self

    def records(self, split: str | None = None, *, with_audio: bool | None = None) -> list[ClipRecord]:
        out = []
        for row in self._rows:
            if row["status"] != "ok" or (split is not None and row["split"] != split):
                continue
            if with_audio is not None and (row["has_audio"] == "True") != with_audio:
                continue
            rec = read_record(self.root, row["clip_id"])
            if rec is not None and rec.status == "ok":
                out.append(rec)
        return out

    def splits(self) -> list[str]:
        return sorted({r["split"] for r in self._rows if r["status"] == "ok"})

    def crops_path(self, record: ClipRecord, size: int = 128) -> Path:
        return clip_dir(self.root, record.clip_id) / f"crops_{size}.mp4"

    def load(self, record: ClipRecord, speech: str | None = None) -> ClipTrack:
        """``speech``: also read the clip's speech features of that name (``feature_name``; an error if they lack)."""
        track = self._load(record)
        if speech is not None:
            track.speech = read_speech(self.root, record, speech)
            if track.speech is None:
                raise InputError(
                    self.root, f"clip {record.clip_id} has no {speech} speech features; run `dub prep` again"
                )
        return track

    def _load(self, record: ClipRecord) -> ClipTrack:
        path = clip_dir(self.root, record.clip_id) / "track.npz"
        try:
            with np.load(path) as z:
                return ClipTrack(
                    record=record,
                    times=z["times"],
                    flags=z["flags"],
                    crop_points=z["crop_points"].astype(np.float32),
                    frame_points=z["frame_points"],
                    transforms=z["transforms"],
                    angles=z["angles"],
                    mel=z["mel"].astype(np.float32),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"cannot read the prepared clip ({exc})") from None


def held_out_speakers(path: str | Path | None) -> frozenset[str]:
    """The speakers of a CSV with a ``speaker`` column (a benchmark's clip list), which training must never see."""
    if not path:
        return frozenset()
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "hold_out: no such file (a CSV with a speaker column)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "speaker" not in (reader.fieldnames or []):
            raise InputError(path, "hold_out: the CSV has no speaker column")
        return frozenset(row["speaker"] for row in reader if row["speaker"])
