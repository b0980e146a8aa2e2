"""How long the output is and which source frame each output frame shows (docs/ARCHITECTURE.md §7).

The output follows the new audio: ``round(audio_seconds * fps)`` dubbed frames, after ``lead_frames`` of the
source's own (``--start``: the dub starts that far into the video). A source too short for the audio from there is
extended (ping-pong by default, or loop, or freeze on its last frame) over its frames from the start; a longer one is
cut, or with ``keep_rest`` goes on with its own frames (and, in the pipeline, its own audio) after the dub ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dubber.errors import InputError

FIT_MODES = ("pingpong", "loop", "freeze")


@dataclass(frozen=True)
class Timeline:
    source_frames: int
    dub_frames: int  # frames whose mouth follows the new audio
    fit: str = "pingpong"
    keep_rest: bool = False
    lead_frames: int = 0  # the source's own frames shown before the dub starts

    def __post_init__(self) -> None:
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit={self.fit!r} is not one of {', '.join(FIT_MODES)}")
        if self.source_frames < 1 or self.dub_frames < 1:
            raise ValueError(f"need at least one source and one dubbed frame, got {self}")
        if not 0 <= self.lead_frames < self.source_frames:
            raise ValueError(f"the dub must start on one of the source's frames, got {self}")

    @classmethod
    def plan(
        cls,
        source_frames: int,
        audio_seconds: float,
        fps: float,
        fit: str = "pingpong",
        keep_rest: bool = False,
        start_seconds: float = 0.0,
    ) -> Timeline:
        lead = lead_frames(start_seconds, fps)
        return cls(source_frames, max(1, round(audio_seconds * fps)), fit, keep_rest, lead)

    @property
    def rest_frames(self) -> int:
        """Original frames that follow the dub (only with ``keep_rest`` and a source longer than the audio)."""
        return max(0, self.source_frames - self.lead_frames - self.dub_frames) if self.keep_rest else 0

    @property
    def total_frames(self) -> int:
        return self.lead_frames + self.dub_frames + self.rest_frames

    @property
    def dub_end(self) -> int:
        """The first output frame after the dubbed ones."""
        return self.lead_frames + self.dub_frames

    @property
    def extended(self) -> bool:
        """Whether some source frames are shown more than once."""
        return self.dub_frames > self.source_frames - self.lead_frames

    @property
    def forward_only(self) -> bool:
        """Whether source frames are needed in non-decreasing order (one decoding pass is enough)."""
        return not self.extended or self.fit == "freeze" or self.source_frames - self.lead_frames == 1

    def revisited(self) -> list[int]:
        """The source frames the output shows after it has shown a later one: a forward decode has passed them."""
        if self.forward_only:
            return []
        seen: set[int] = set()
        first, n = self.source_frames, self.source_frames - self.lead_frames
        for i in range(first, self.dub_end):
            seen.add(self.source_index(i))
            if len(seen) == n:
                break
        return sorted(seen)

    def source_index(self, i: int) -> int:
        """The source frame output frame ``i`` shows."""
        if i < self.lead_frames or i >= self.dub_end:
            return i  # the source's own frames, before and after the dub
        return self.lead_frames + self._extended(i - self.lead_frames)

    def _extended(self, j: int) -> int:
        """The frame, counted from the dub's start, that dubbed frame ``j`` shows."""
        n = self.source_frames - self.lead_frames
        if j < n:
            return j
        if n == 1 or self.fit == "freeze":
            return n - 1
        if self.fit == "loop":
            return j % n
        period = 2 * (n - 1)  # 0 1 .. n-1 n-2 .. 1 | 0 1 ..
        k = j % period
        return k if k < n else period - k

    def source_indices(self, start: int = 0, stop: int | None = None) -> list[int]:
        """The source frames output frames ``start..stop-1`` show."""
        stop = self.total_frames if stop is None else min(stop, self.total_frames)
        return [self.source_index(i) for i in range(start, stop)]

    def dubbed_source_indices(self, start: int, stop: int) -> list[int]:
        """The source frames dubbed frames ``start..stop-1`` show (dubbed frame 0 is output frame
        ``lead_frames``)."""
        return self.source_indices(self.lead_frames + start, self.lead_frames + min(stop, self.dub_frames))


def lead_frames(start_seconds: float, fps: float) -> int:
    """Output frames before a dub that starts ``start_seconds`` into the video."""
    return max(0, round(start_seconds * fps))


def parse_time(text: str) -> float:
    """Seconds from ``text``: a number of seconds (83.5) or [HH:]MM:SS[.fraction] (1:23.5); ValueError for
    anything else (a negative, a minute or second field of 60 or more, an empty field)."""
    parts = text.strip().split(":")
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise ValueError(text)
    numbers = [float(p) for p in parts]
    if any(not 0 <= n < float("inf") for n in numbers) or any(n >= 60 for n in numbers[1:]):
        raise ValueError(text)
    seconds = 0.0
    for n in numbers:
        seconds = seconds * 60 + n
    return seconds


def check_start(video: Path, start_seconds: float, frames: int, fps: float) -> None:
    """An InputError naming ``video`` where a dub cannot start ``start_seconds`` into its ``frames`` at ``fps``: a
    still image, or a start at or past the video's last frame."""
    if start_seconds <= 0:
        return
    if frames <= 1:
        raise InputError(video, "is a still image: a dub of it starts at its beginning (leave out --start)")
    if lead_frames(start_seconds, fps) >= frames:
        raise InputError(video, f"--start {start_seconds:g} s is at or past the video's end ({frames / fps:.2f} s)")
