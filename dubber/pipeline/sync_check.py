"""``dub sync``: how well a video's mouth follows a sound, and how far apart its picture and sound are.

The landmark completer plans the mouth opening the sound asks for (the video's own sound, or another file timed from
the video's first frame), and that plan is set against the opening tracked on the video's frames at the best shift
within ``max_offset`` seconds (``mouth_lag.best_lag``): the correlation there says whether the mouth follows the
sound at all (a voice-over, music or another take: near 0), and the shift is the offset between picture and sound.
Read over the whole video, over windows of it (where in a long video the sync is lost), and per person told apart.
A dub's output follows its new speech by construction (the same completer planned its mouth), so on a dub this
says how faithfully the mouth was drawn rather than how right the plan was. Measured in docs/DUBBING.md
"Checking sync".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dubber.errors import InputError, NoAudioStreamError
from dubber.media.container import open_input
from dubber.media.probe import probe_media
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.mouth_lag import MAX_LAG_SECONDS, MIN_CORRELATION
from dubber.pipeline.person_references import LandmarkReferences, people_in
from dubber.pipeline.speaking_people import STILL_MOUTH, mouth_reading, planned_opening

# At or above it the mouth follows the sound: each of 14 clips of unseen speakers with its own sound (0.44 to 0.83),
# 4% of the same clips with another clip's sound (8 of 182 pairs; docs/DUBBING.md "Checking sync").
FOLLOWS = 0.4
WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class SyncReading:
    """The plan against the tracked mouth over some frames: the correlation at the best shift and that shift
    (frames; > 0: the picture runs behind the sound); None for both with under ``mouth_lag.MIN_SECONDS`` of a
    face."""

    match: float | None
    offset: int | None

    @staticmethod
    def of(planned: np.ndarray, tracked: np.ndarray, fps: float, max_offset: float) -> SyncReading:
        return SyncReading(*mouth_reading(planned, tracked, fps, max_offset))


@dataclass(frozen=True)
class SyncWindow:
    start: float  # seconds
    end: float
    reading: SyncReading

    def to_dict(self, fps: float) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), **_reading_dict(self.reading, fps)}


@dataclass
class SyncReport:
    video: Path
    audio: Path | None  # None: the video's own sound
    fps: float
    frames: int  # compared: the fewer of the video's frames and the sound's
    frames_with_face: int  # of those
    reading: SyncReading
    max_offset: float  # seconds searched either way
    mouth_moves: bool = True
    windows: list[SyncWindow] = field(default_factory=list)
    people: list[SyncReading] = field(default_factory=list)  # as ``--person`` counts them, when several
    seconds: float = 0.0

    @property
    def match(self) -> float | None:
        return self.reading.match

    @property
    def offset_seconds(self) -> float | None:
        return None if self.reading.offset is None else self.reading.offset / self.fps

    @property
    def at_search_edge(self) -> bool:
        """The best shift is the widest searched: picture and sound may be further apart."""
        most = max(1, int(round(self.max_offset * self.fps)))
        return self.reading.offset is not None and abs(self.reading.offset) == most

    @property
    def verdict(self) -> str:
        match = self.reading.match
        if self.frames_with_face == 0:
            return "no face"
        if not self.mouth_moves:
            return "the mouth does not move"
        if match is None:
            return "too short to tell"
        if match >= FOLLOWS:
            return "in sync"
        return "weakly in sync" if match >= MIN_CORRELATION else "not in sync"

    def to_dict(self) -> dict:
        return {
            "video": str(self.video),
            "audio": None if self.audio is None else str(self.audio),
            "fps": round(self.fps, 3),
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            **_reading_dict(self.reading, self.fps),
            "verdict": self.verdict,
            "max_offset": self.max_offset,
            "at_search_edge": self.at_search_edge,
            "windows": [w.to_dict(self.fps) for w in self.windows],
            "people": [_reading_dict(r, self.fps) for r in self.people],
            "seconds": round(self.seconds, 3),
        }


def _reading_dict(reading: SyncReading, fps: float) -> dict:
    offset = reading.offset
    return {
        "match": reading.match,
        "offset_frames": offset,
        "offset_ms": None if offset is None else round(offset / fps * 1e3, 1),
    }


def check_sync_inputs(video: str | Path, audio: str | Path | None) -> None:
    """The files a sync check reads, before any work: a video of more than one frame, and a sound (its own when
    ``audio`` is None). Raises :class:`dubber.errors.InputError` subclasses naming the file."""
    media = probe_media(video, require_video=True)
    if media.video is not None and media.video.frame_count == 1:
        raise InputError(video, "is a still image: it has no mouth movement to check")
    if audio is None and media.audio is None:
        raise NoAudioStreamError(video, "has no audio stream to check its mouth against (give --audio)")
    if audio is not None:
        with open_input(audio) as container:
            if not container.streams.audio:
                raise NoAudioStreamError(audio, "no audio stream")


def read_sync(
    model,
    speech,
    track: VideoTrack,
    fps: float,
    references: LandmarkReferences,
    *,
    video: Path,
    audio: Path | None = None,
    max_offset: float = MAX_LAG_SECONDS,
    window: float = WINDOW_SECONDS,
) -> SyncReport:
    """``video``'s mouth (its ``track``) against ``speech`` (the completer's features of ``audio``, or of its own
    sound; closed here) over the frames the two share, over windows of ``window`` seconds (a last window shorter
    than half of one joins the one before), and per person where there are several."""
    planned, who = planned_opening(model, speech, track, fps, references)
    frames = len(planned)
    tracked = np.where(track.has_face[:frames], track.opening[:frames], np.nan)
    moves = not bool(np.isfinite(tracked).any()) or float(np.nanstd(tracked)) >= STILL_MOUTH
    step = max(1, int(round(window * fps)))
    bounds = list(range(0, frames, step))
    if len(bounds) > 1 and frames - bounds[-1] < step / 2:
        bounds.pop()
    windows = []
    most = max(1, int(round(max_offset * fps)))  # the widest shift searched (frames)
    for k, start in enumerate(bounds):
        stop = bounds[k + 1] if k + 1 < len(bounds) else frames
        # The mouth of the window alone against the plan around it: the best shift may reach across the window's
        # edges, and nothing further is read (a long video's windows would each read the whole plan).
        lo, hi = max(0, start - most), min(frames, stop + most)
        seen = np.full(hi - lo, np.nan)
        seen[start - lo : stop - lo] = tracked[start:stop]
        reading = SyncReading.of(planned[lo:hi], seen, fps, max_offset)
        windows.append(SyncWindow(float(track.times[start]), float(track.times[stop - 1]) + 1.0 / fps, reading))
    people = people_in(references)
    per_person = (
        []
        if people < 2
        else [SyncReading.of(planned, np.where(who == k, tracked, np.nan), fps, max_offset) for k in range(people)]
    )
    return SyncReport(
        video=video,
        audio=audio,
        fps=fps,
        frames=frames,
        frames_with_face=int(np.isfinite(tracked).sum()),
        reading=SyncReading.of(planned, tracked, fps, max_offset),
        max_offset=max_offset,
        mouth_moves=moves,
        windows=windows,
        people=per_person,
    )
