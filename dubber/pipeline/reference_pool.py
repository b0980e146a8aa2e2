"""The reference pool of pass 1: a bounded set of the video's own frames, binned by mouth opening and head turn
(and by who is on screen: ``dubber.face.identities``), from which the renderer's references are chosen once
the whole video has been seen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dubber.face.identities import Identities, People
from dubber.models.reference_choice import spread_references

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
    identity: int = -1  # who it shows (``Identities``; -1: not told)


def _run_group(run: int) -> int:
    """The group the frames of the run being tracked are kept in until its identity is known (below -1)."""
    return -2 - run


@dataclass
class ReferencePool:
    """Reference crops binned by mouth opening and head turn, per identity: per bin the frame nearest the bin's turn,
    with the same square at the face's resolution when the face is larger than the crop (its detail, for the
    compositor).

    Turn bins (``YAW_STEP`` degrees wide, centred on frontal) let a turned target be hinted by a frame turned the
    same way: a frontal hint carried onto a face turned 20-30 degrees folds under the warp (docs/RENDERER.md
    "Pose"). A run of tracked frames (``start_run``) is kept apart until it ends, when its look tells whose bins
    it joins (a bin keeps its first frame of least turn, as if every frame had been offered to them in order)."""

    bins: int = 96  # opening bins per turn bin
    max_opening: float = 0.72
    entries: dict[tuple[int, int, int], PoolEntry] = field(default_factory=dict)  # (group, pose, opening) keys
    people: People = field(default_factory=People)

    @property
    def identities(self) -> Identities:
        return self.people.identities

    @property
    def current_run(self) -> int:
        """The run being tracked (its first frame; -1: none)."""
        return self.people.run.run

    def start_run(self, index: int) -> None:
        """Frame ``index`` starts a run: the tracker acquired the face afresh (the start, a scene cut, a loss)."""
        self._settle(self.people.start_run(index))

    def saw_cut(self) -> None:
        """The tracker found a scene cut (``People.saw_cut``)."""
        self.people.saw_cut()

    def end_run(self) -> None:
        """The run being tracked is over: its frames join the bins of its identity."""
        self._settle(self.people.end_run())

    def _settle(self, run: int | None) -> None:
        """Move the frames of ``run``, which ended, into the bins of its identity (and those of the runs before the
        first person was told into theirs, once one is)."""
        if run is None or self.identities.deferred:
            return
        if self.identities.looks:  # the earlier frames first: a bin keeps its first frame of least turn
            self._move(-1, 0)
        self._move(_run_group(run), self.identities.of_run[run])

    def _move(self, group: int, who: int) -> None:
        if group == who:
            return
        for key in [k for k in self.entries if k[0] == group]:
            entry = self.entries.pop(key)
            entry.identity = who
            self._keep((who, *key[1:]), entry)

    def _keep(self, key: tuple[int, int, int], entry: PoolEntry) -> None:
        held = self.entries.get(key)
        if held is None or entry.turn < held.turn:
            self.entries[key] = entry

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
        fill a bin nothing else fills). ``crop`` and ``detail`` are called only if the frame is kept or looked at."""
        made: list[np.ndarray] = []

        def the_crop() -> np.ndarray:
            if not made:
                made.append(crop())
            return made[0]

        if self.current_run >= 0:
            self._settle(self.people.see(index, angles, the_crop))
        yaw, pitch = angles
        pose = int(np.clip(round(yaw / YAW_STEP), -YAW_BINS, YAW_BINS))
        group = _run_group(self.current_run) if self.current_run >= 0 else -1
        key = (group, pose, int(np.clip(opening / self.max_opening * self.bins, 0, self.bins - 1)))
        turn = abs(yaw - pose * YAW_STEP) + abs(pitch) + (0.0 if usable else 1000.0)
        held = self.entries.get(key)
        if held is None or turn < held.turn:
            image = detail() if detail is not None else None
            self.entries[key] = PoolEntry(opening, turn, index, float(yaw), the_crop(), points, image)

    @classmethod
    def segment(cls) -> ReferencePool:
        """The pool of one of several segments tracked at once: its runs stay apart until ``merge`` tells them."""
        return cls(people=People(Identities(deferred=True)))

    def merge(self, later: ReferencePool) -> None:
        """Take ``later``'s entries, a ``segment`` pool of frames that all come after this one's: its runs told in
        order, after this pool's, so that the result is the pool one tracker offered every frame would hold (a run
        that crosses the segments' border is two runs)."""
        self.end_run()
        later.end_run()
        for key in [k for k in later.entries if k[0] == -1]:  # offered before the segment's first run
            self._keep(key, later.entries.pop(key))
        for run, look, frames, looks, turned, after_cut in later.identities.pending:
            group = _run_group(run)
            for key in [k for k in later.entries if k[0] == group]:  # runs are named by frame: no clash
                self.entries[key] = later.entries.pop(key)
            self.identities.assign(run, look, frames, looks, turned, after_cut)
            self._settle(run)
        later.identities.pending.clear()

    def __len__(self) -> int:
        return len(self.entries)

    def held(self) -> list[PoolEntry]:
        """Every entry: by identity, frontal first, each pose by opening."""
        self.end_run()
        return [self.entries[k] for k in sorted(self.entries, key=lambda k: (k[0], abs(k[1]), k[1], k[2]))]

    def choose(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(crops (K, S, S, 3) uint8, points (K, 131, 2), frame indices) spread over the opening range, from the
        frontal entries when there are any, of the identity seen longest when it has any."""
        held = self.held()
        main = self.identities.main()
        held = [e for e in held if e.identity == main] or held
        usable = [e for e in held if e.turn < 1000.0]
        frontal = [e for e in usable if abs(e.yaw) < YAW_STEP / 2] or usable or held
        opening = np.array([e.opening for e in frontal], np.float32)
        pick = spread_references(opening, np.arange(len(frontal)), count, None)
        return (
            np.stack([frontal[i].crop for i in pick]),
            np.stack([frontal[i].points for i in pick]),
            np.array([frontal[i].index for i in pick]),
        )
