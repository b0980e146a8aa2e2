"""How long the output is and which source frame each output frame shows (docs/ARCHITECTURE.md §7).

The output follows the new audio: ``round(audio_seconds * fps)`` dubbed frames. A shorter source is extended
(ping-pong by default, or loop, or freeze on its last frame); a longer one is cut, or with ``keep_rest`` goes on
with its own frames (and, in the pipeline, its own audio) after the dub ends.
"""

from __future__ import annotations

from dataclasses import dataclass

FIT_MODES = ("pingpong", "loop", "freeze")


@dataclass(frozen=True)
class Timeline:
    source_frames: int
    dub_frames: int  # frames whose mouth follows the new audio
    fit: str = "pingpong"
    keep_rest: bool = False

    def __post_init__(self) -> None:
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit={self.fit!r} is not one of {', '.join(FIT_MODES)}")
        if self.source_frames < 1 or self.dub_frames < 1:
            raise ValueError(f"need at least one source and one dubbed frame, got {self}")

    @classmethod
    def plan(
        cls, source_frames: int, audio_seconds: float, fps: float, fit: str = "pingpong", keep_rest: bool = False
    ) -> Timeline:
        return cls(source_frames, max(1, round(audio_seconds * fps)), fit, keep_rest)

    @property
    def rest_frames(self) -> int:
        """Original frames that follow the dub (only with ``keep_rest`` and a source longer than the audio)."""
        return max(0, self.source_frames - self.dub_frames) if self.keep_rest else 0

    @property
    def total_frames(self) -> int:
        return self.dub_frames + self.rest_frames

    @property
    def extended(self) -> bool:
        """Whether some source frames are shown more than once."""
        return self.dub_frames > self.source_frames

    @property
    def forward_only(self) -> bool:
        """Whether source frames are needed in non-decreasing order (one decoding pass is enough)."""
        return not self.extended or self.fit == "freeze" or self.source_frames == 1

    def revisited(self) -> list[int]:
        """The source frames the output shows after it has shown the last one: a forward decode has passed them."""
        if self.forward_only:
            return []
        seen: set[int] = set()
        for i in range(self.source_frames, self.total_frames):
            seen.add(self.source_index(i))
            if len(seen) == self.source_frames:
                break
        return sorted(seen)

    def source_index(self, i: int) -> int:
        n = self.source_frames
        if i < n:
            return i
        if n == 1 or self.fit == "freeze":
            return n - 1
        if self.fit == "loop":
            return i % n
        period = 2 * (n - 1)  # 0 1 .. n-1 n-2 .. 1 | 0 1 ..
        j = i % period
        return j if j < n else period - j

    def source_indices(self, start: int = 0, stop: int | None = None) -> list[int]:
        stop = self.total_frames if stop is None else min(stop, self.total_frames)
        return [self.source_index(i) for i in range(start, stop)]
