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

A face turned further than ``MOST_YAW`` looks otherwise (its features foreshortened, one side hidden), so a run's
looks are kept by pose: one sum for the frames facing the camera, and one per ``TURN_BIN`` degrees of yaw on each
side (``pose_bin``). Two runs are compared facing the camera where both were seen so; where only turned, in the bins
both were seen in. Measured the same way over 40 clips with turned frames (``scripts/identity_looks.py``,
``turned``): within one 5-degree bin on one side, thirds of one clip agree at 0.53 or more (5th percentile 0.75),
different speakers' at 0.37 (95th percentile 0.61); a bin apart, one clip's thirds fall to 0.45 (5th percentile
0.51), and a face mirrored to the other side agrees with itself hardly better than with others (median 0.48
against 0.29: faces and their lighting are not symmetric). So only the same bin on the same side is compared.
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
TURN_BIN = 5.0  # degrees of yaw per bin of the turned looks, beyond MOST_YAW, on each side (up to CUT_TURN)
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


def pose_bin(angles: tuple[float, float]) -> int | None:
    """The pose a frame turned by ``angles`` (yaw, pitch) is compared in: 0 facing the camera (``MOST_YAW``,
    ``MOST_PITCH``), +-1, +-2, ... for each ``TURN_BIN`` degrees of yaw beyond that on either side (up to
    ``CUT_TURN``); None: tilted up or down too far, or turned further."""
    yaw, pitch = abs(angles[0]), abs(angles[1])
    if pitch > MOST_PITCH or yaw > CUT_TURN:
        return None
    if yaw <= MOST_YAW:
        return 0
    return int(np.sign(angles[0])) * (1 + int((yaw - MOST_YAW) // TURN_BIN))


# Per turned pose bin (``pose_bin``), the sum of a run's or a person's looks in it and how many.
Turned = dict[int, tuple[np.ndarray, int]]


def _add_turned(into: Turned, more: Turned) -> None:
    for pose, (look, count) in more.items():
        held = into.get(pose)
        into[pose] = (look.copy(), count) if held is None else (held[0] + look, held[1] + count)


def _turned_similarity(run: Turned, known: Turned) -> tuple[float, int] | None:
    """The agreement of two sets of turned looks over the bins both have (a mean of the bins' cosines, each
    weighted by the fewer of its two counts) and the looks it rests on (the run's in those bins); None: no bin in
    common."""
    shared = [pose for pose in run if pose in known]
    if not shared:
        return None
    weights = np.array([min(run[p][1], known[p][1]) for p in shared], dtype=np.float64)
    cosines = np.array([float(_unit(run[p][0]) @ _unit(known[p][0])) for p in shared])
    return float(cosines @ weights / weights.sum()), sum(run[p][1] for p in shared)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass
class Identities:
    """The people seen so far: per identity the sum of its runs' looks facing the camera (zeros: never seen so), its
    turned looks by pose, and its frames; per run (named by its first frame) its identity. A run that cannot be
    compared with anyone (no look, or looks only in poses no one else was seen in) is the run before it's person,
    or, before any person was told, the first one told; -1 while none is (and for good, where none ever is: such
    runs take references from all)."""

    looks: list[np.ndarray] = field(default_factory=list)
    turned: list[Turned] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    of_run: dict[int, int] = field(default_factory=dict)
    untold_frames: int = 0  # frames of the runs waiting for the first person
    # A segment's (several trackers at once): its runs are kept in order (``pending``) and told only when the
    # segments are joined, as one tracker would have told them (a short run after a cut is then matched against
    # everyone seen before it, not only those its own segment saw).
    deferred: bool = False
    pending: list[tuple[int, np.ndarray | None, int, int, Turned, bool]] = field(default_factory=list)

    def last(self) -> int:
        """The identity of the latest run (-1: none yet, or none told)."""
        return self.of_run[max(self.of_run)] if self.of_run else -1

    def assign(
        self,
        run: int,
        look: np.ndarray | None,
        frames: int,
        looks: int,
        turned: Turned | None = None,
        after_cut: bool = False,
    ) -> int:
        """Run ``run``'s identity from the sum of its ``looks`` facing the camera and its ``turned`` looks, over its
        ``frames``; with none to compare, the run before it's (a look cut inside one person's shot, a blink or a
        fast turn, changes nobody), unless it starts ``after_cut`` (a scene cut) with enough looks: then someone
        new. A deferred one keeps the run for later (-1)."""
        turned = turned or {}
        if self.deferred:  # kept apart from the run's sums, which the caller may go on adding to
            kept = {pose: (v.copy(), n) for pose, (v, n) in turned.items()}
            self.pending.append((run, None if look is None else look.copy(), frames, looks, kept, after_cut))
            return -1
        who = self._told(look, looks, turned, after_cut)
        if who is None:  # nothing to compare with anyone
            who = self.last()
            if who >= 0:
                self.frames[who] += frames
            else:
                self.untold_frames += frames
        else:
            who = self._join(who, look, turned, frames)
        self.of_run[run] = who
        return who

    def _told(self, look: np.ndarray | None, looks: int, turned: Turned, after_cut: bool) -> int | None:
        """Whom a run's looks match (-1: someone new), or None where they can be compared with no one (no looks,
        or only in poses no one was seen in). Facing the camera is compared where both were seen so, else the
        turned poses both were seen in; a run of fewer than ``MIN_RUN_LOOKS`` compared looks, or one beyond
        ``MOST_IDENTITIES``, joins the nearest. A run after a scene cut seen only in poses no one else was, with
        ``MIN_RUN_LOOKS`` looks or more, is someone new: the shot of another person at another angle (an interview
        filmed from two sides) rather than the same person again (one person filmed from two sides is then two,
        which costs only a narrower choice of references)."""
        if look is None and not turned:
            return None
        if not self.looks:
            return -1  # the first person
        similarity: list[float | None] = []
        compared = []
        for known, known_turned in zip(self.looks, self.turned, strict=True):
            if look is not None and float(np.linalg.norm(known)) > 0:
                similarity.append(float(_unit(look) @ _unit(known)))
                compared.append(looks)
                continue
            by_pose = _turned_similarity(turned, known_turned)
            similarity.append(None if by_pose is None else by_pose[0])
            compared.append(0 if by_pose is None else by_pose[1])
        candidates = [k for k, v in enumerate(similarity) if v is not None]
        if not candidates:
            seen = looks + sum(count for _, count in turned.values())
            new = after_cut and seen >= MIN_RUN_LOOKS and len(self.looks) < MOST_IDENTITIES
            return -1 if new else None
        best = max(candidates, key=lambda k: similarity[k])
        known = similarity[best] >= SAME_PERSON or len(self.looks) >= MOST_IDENTITIES
        return best if known or compared[best] < MIN_RUN_LOOKS else -1

    def _join(self, who: int, look: np.ndarray | None, turned: Turned, frames: int) -> int:
        if who < 0:
            self.looks.append(np.zeros(_GRID[0] * _GRID[1], np.float32) if look is None else look.copy())
            self.turned.append({})
            self.frames.append(0)
            who = len(self.looks) - 1
            if who == 0:  # the first person told: the runs before, untold, were them
                self.of_run = {run: 0 if w < 0 else w for run, w in self.of_run.items()}
                self.frames[0] += self.untold_frames
                self.untold_frames = 0
        elif look is not None:
            self.looks[who] = self.looks[who] + look
        _add_turned(self.turned[who], turned)
        self.frames[who] += frames
        return who

    def main(self) -> int:
        """The identity seen in the most frames (-1: none)."""
        return int(np.argmax(self.frames)) if self.frames else -1

    def ranked(self) -> list[int]:
        """The identities, the one seen in the most frames first (``--person`` counts them so; ties: the first told)."""
        return [int(k) for k in np.argsort(-np.asarray(self.frames), kind="stable")]


@dataclass
class RunLooks:
    """The run being tracked: its name (first frame), the sum of the looks taken of it facing the camera and of
    those turned, by pose, the last one."""

    run: int = -1
    look: np.ndarray | None = None
    last: np.ndarray | None = None
    last_index: int = -1  # the frame of ``last``
    looks: int = 0
    frames: int = 0  # frames of the run seen
    turned: Turned = field(default_factory=dict)
    after_cut: bool = False  # the run starts after a scene cut

    @staticmethod
    def wants_look(angles: tuple[float, float]) -> bool:
        """Whether a frame turned by ``angles`` (yaw, pitch) is looked at (``CUT_TURN``)."""
        return max(abs(angles[0]), abs(angles[1])) <= CUT_TURN

    def another_face(self, look: np.ndarray, index: int) -> bool:
        """Whether ``look``, of frame ``index``, is so unlike the run's last one, a frame or two before, that the
        tracked face is another (``LOOK_CUT``)."""
        near = self.last is not None and index - self.last_index <= LOOK_GAP
        return near and float(look @ self.last) < LOOK_CUT

    def add(self, look: np.ndarray, index: int, pose: int | None = 0) -> None:
        """Frame ``index``'s look: the last one seen, and one of the run's in its ``pose`` (``pose_bin``; None:
        none)."""
        self.last, self.last_index = look, index
        if pose == 0:
            self.look = look.copy() if self.look is None else self.look + look
            self.looks += 1
        elif pose is not None:
            _add_turned(self.turned, {pose: (look, 1)})


@dataclass
class People:
    """Who the tracked face is, frame after frame, in order (pass 1's reference pool, ``dub inspect``): the run being
    seen and the identities of those that ended."""

    identities: Identities = field(default_factory=Identities)
    run: RunLooks = field(default_factory=RunLooks)
    cut: bool = False  # a scene cut since the run being seen started

    def saw_cut(self) -> None:
        """The tracker found a scene cut: the next run starts after it."""
        self.cut = True

    def start_run(self, index: int) -> int | None:
        """Frame ``index`` starts a run (the tracker acquired the face afresh); the run that ended, if one did."""
        ended = self.end_run()
        self.run = RunLooks(index, after_cut=self.cut)
        self.cut = False
        return ended

    def end_run(self) -> int | None:
        """The run being seen is over: its identity is told (``identities.of_run``); it, or None if none was."""
        ended = self.run.run
        if ended < 0:
            return None
        run = self.run
        self.identities.assign(ended, run.look, run.frames, run.looks, run.turned, run.after_cut)
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
                self.run.add(look, index, pose_bin(angles))
        self.run.frames += 1
        return ended

    def look_of(self, crop: Callable[[], np.ndarray]) -> np.ndarray | None:
        """The look of a frame facing the camera (``face_look`` of its aligned crop)."""
        return face_look(crop())
