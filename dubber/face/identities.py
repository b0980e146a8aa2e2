"""Who is on screen. The face tracked through a video can be different people from shot to shot (an interview cut
between two speakers), and a frame redrawn from another person's reference frames takes on their mouth and skin.
The track is cut into runs (a new one where the tracker acquires a face afresh, or where the look of the face
changes at once from one frame to the next: a cut the scene-cut test missed), each run gets its look, and runs that
look alike are one identity; a frame's references come from frames of its own identity.

The look is the gradient magnitude of the upper face (brows, eyes, nose; not the mouth, which speech changes) in
the aligned crop, on a coarse grid, zero-mean and unit-norm: insensitive to brightness and contrast, sensitive to
the shape and placement of the features. Measured on the shared clips (`scripts/identity_looks.py`,
`benchmarks/results/identity_look.json`): thirds of one clip agree at 0.54 or more (median 0.89), different
speakers' clips at 0.26 (95th percentile 0.49). Runs at ``SAME_PERSON`` or more are joined: a person is seldom split
in two (which would only narrow the references), and two people who look alike stay one identity, as every run was
before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

SAME_PERSON = 0.6  # cosine of two runs' mean looks at or above which they are one identity
# Cosine of a frame's look and the previous one's under which the tracked face is taken to be another (a cut the
# scene-cut test missed, between two shots of the same colours): within one person's shot consecutive looks agree
# at 0.65-0.99 (lowest per clip, 31 of 35 single-speaker clips), across a cut between two people at 0.28-0.34.
LOOK_CUT = 0.5
MIN_RUN_LOOKS = 8  # a run with fewer looks joins its nearest identity: too little seen of it to tell a new person
MOST_IDENTITIES = 4  # beyond this, a new run joins its nearest identity (the pool holds up to this many people)
# Degrees of yaw and pitch up to which a frame's look counts towards its run's: a face turned further looks
# otherwise (one person turned 20 degrees and facing the camera agreed at 0.57, less than two people did).
MOST_YAW, MOST_PITCH = 12.0, 15.0
# ... and up to which it is compared with the frame before (whose pose is nearly the same, unless at a cut).
CUT_TURN = 35.0
LOOK_GAP = 2  # frames between two looks over which a look cut is tested (further apart, the pose may have moved)
_GRID = (24, 16)  # cells across, down
_UPPER = (0.0625, 0.5625, 0.125, 0.875)  # unit-crop rows y0..y1, columns x0..x1: brows, eyes and nose


def face_look(crop: np.ndarray) -> np.ndarray:
    """(384,) float32, unit norm: the upper face's gradient magnitude on a coarse grid, zero-mean (an S x S aligned
    RGB crop)."""
    s = crop.shape[0]
    grey = cv2.GaussianBlur(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), s / 128)
    magnitude = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    y0, y1, x0, x1 = (round(v * s) for v in _UPPER)
    cells = cv2.resize(magnitude[y0:y1, x0:x1], _GRID, interpolation=cv2.INTER_AREA).ravel()
    cells -= cells.mean()
    norm = float(np.linalg.norm(cells))
    return cells / norm if norm > 0 else cells


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass
class Identities:
    """The people seen so far: per identity the sum of its runs' looks and its frames; per run (named by its first
    frame) its identity. A run without a look (every frame turned away) is the run before it's person, or, before
    any person was told, the first one told; -1 while none is (and for good, where none ever is: such runs take
    references from all)."""

    looks: list[np.ndarray] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    of_run: dict[int, int] = field(default_factory=dict)
    untold_frames: int = 0  # frames of the runs waiting for the first person
    # A segment's (several trackers at once): its runs are kept in order (``pending``) and told only when the
    # segments are joined, as one tracker would have told them (a short run after a cut is then matched against
    # everyone seen before it, not only those its own segment saw).
    deferred: bool = False
    pending: list[tuple[int, np.ndarray | None, int, int]] = field(default_factory=list)

    def last(self) -> int:
        """The identity of the latest run (-1: none yet, or none told)."""
        return self.of_run[max(self.of_run)] if self.of_run else -1

    def assign(self, run: int, look: np.ndarray | None, frames: int, looks: int) -> int:
        """Run ``run``'s identity from the sum of its ``looks`` over its ``frames``; with none, the run before it's
        (a look cut inside one person's shot, a blink or a fast turn, changes nobody). A deferred one keeps the
        run for later (-1)."""
        if self.deferred:
            self.pending.append((run, None if look is None else look.copy(), frames, looks))
            return -1
        if look is None:
            who = self.last()
            if who >= 0:
                self.frames[who] += frames
            else:
                self.untold_frames += frames
        else:
            who = self._join(look, frames, new_allowed=looks >= MIN_RUN_LOOKS)
        self.of_run[run] = who
        return who

    def _join(self, look: np.ndarray, frames: int, new_allowed: bool) -> int:
        who = self.nearest(look, new_allowed)
        if who < 0:
            self.looks.append(look.copy())
            self.frames.append(frames)
            if len(self.looks) == 1:  # the first person told: the runs before, untold, were them
                self.of_run = {run: 0 if w < 0 else w for run, w in self.of_run.items()}
                self.frames[0] += self.untold_frames
                self.untold_frames = 0
            return len(self.looks) - 1
        self.looks[who] = self.looks[who] + look
        self.frames[who] += frames
        return who

    def nearest(self, look: np.ndarray, new_allowed: bool = True) -> int:
        """The identity ``look`` (a sum of looks) belongs to, or -1 for a new one (only if ``new_allowed``)."""
        if not self.looks:
            return -1
        similarity = [float(_unit(look) @ _unit(known)) for known in self.looks]
        best = int(np.argmax(similarity))
        known = similarity[best] >= SAME_PERSON or len(self.looks) >= MOST_IDENTITIES or not new_allowed
        return best if known else -1

    def main(self) -> int:
        """The identity seen in the most frames (-1: none)."""
        return int(np.argmax(self.frames)) if self.frames else -1

    def ranked(self) -> list[int]:
        """The identities, the one seen in the most frames first (``--person`` counts them so; ties: the first told)."""
        return [int(k) for k in np.argsort(-np.asarray(self.frames), kind="stable")]


@dataclass
class RunLooks:
    """The run being tracked: its name (first frame), the sum of the looks taken of it, the last one."""

    run: int = -1
    look: np.ndarray | None = None
    last: np.ndarray | None = None
    last_index: int = -1  # the frame of ``last``
    looks: int = 0
    frames: int = 0  # frames of the run seen

    @staticmethod
    def wants_look(angles: tuple[float, float]) -> bool:
        """Whether a frame turned by ``angles`` (yaw, pitch) is looked at (``CUT_TURN``)."""
        return max(abs(angles[0]), abs(angles[1])) <= CUT_TURN

    @staticmethod
    def counts(angles: tuple[float, float]) -> bool:
        """Whether a frame's look counts towards its run's: one that faces the camera."""
        return abs(angles[0]) <= MOST_YAW and abs(angles[1]) <= MOST_PITCH

    def another_face(self, look: np.ndarray, index: int) -> bool:
        """Whether ``look``, of frame ``index``, is so unlike the run's last one, a frame or two before, that the
        tracked face is another (``LOOK_CUT``)."""
        near = self.last is not None and index - self.last_index <= LOOK_GAP
        return near and float(look @ self.last) < LOOK_CUT

    def add(self, look: np.ndarray, index: int, counts: bool = True) -> None:
        """Frame ``index``'s look: the last one seen, and one of the run's if it ``counts``."""
        self.last, self.last_index = look, index
        if counts:
            self.look = look.copy() if self.look is None else self.look + look
            self.looks += 1


@dataclass
class People:
    """Who the tracked face is, frame after frame, in order (pass 1's reference pool, ``dub inspect``): the run being
    seen and the identities of those that ended."""

    identities: Identities = field(default_factory=Identities)
    run: RunLooks = field(default_factory=RunLooks)

    def start_run(self, index: int) -> int | None:
        """Frame ``index`` starts a run (the tracker acquired the face afresh); the run that ended, if one did."""
        ended = self.end_run()
        self.run = RunLooks(index)
        return ended

    def end_run(self) -> int | None:
        """The run being seen is over: its identity is told (``identities.of_run``); it, or None if none was."""
        ended = self.run.run
        if ended < 0:
            return None
        self.identities.assign(ended, self.run.look, self.run.frames, self.run.looks)
        self.run = RunLooks()
        return ended

    def see(self, index: int, angles: tuple[float, float], crop: Callable[[], np.ndarray]) -> int | None:
        """Frame ``index`` of the run, turned by ``angles`` (yaw, pitch), its aligned crop made by ``crop`` if it is
        looked at; the run that ended on it (its look so unlike the frame before's that it starts another), if one
        did."""
        ended = None
        if self.run.wants_look(angles):
            look = self.look_of(crop)
            if look is not None:
                if self.run.another_face(look, index):  # a cut the tracker followed through: a run from here
                    ended = self.start_run(index)
                self.run.add(look, index, self.run.counts(angles))
        self.run.frames += 1
        return ended

    def look_of(self, crop: Callable[[], np.ndarray]) -> np.ndarray | None:
        """The look of a frame facing the camera (``face_look`` of its aligned crop)."""
        return face_look(crop())
