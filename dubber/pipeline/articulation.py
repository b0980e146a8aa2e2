"""The speaker's own range of movement: how far the planned lips and jaw spread about the plan's mean.

The completer is a regression: on a voice it never heard it plans a mouth that moves less than the speaker's
(planned articulation 0.74 of the truth's on the dev split's unseen speakers). The input video shows how much this
speaker moves: the completer plans the video's own speech, its planned opening is compared with the opening tracked
on the same frames, and the dub's plan is spread by the square root of their std ratio (a shrunk estimate from a
few seconds of one speaker), between 1 and ``MAX_GAIN``, about the mean of that own-speech plan (the speaker's
planned mouth at rest and in speech, at this video's poses). Computed once per dub from the source alone, so the
new audio's chunks cannot change it. Measured: docs/QUALITY.md "Articulation from the video's own speech". The same
reading of the video's own speech also times its mouth against its sound (``dubber.pipeline.mouth_lag``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from dubber.audio.streaming import StreamedFeatures
from dubber.cpu_threads import start_torch_thread
from dubber.data.clip_arrays import content_opening
from dubber.face.landmarks import N_CONTENT
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.motion import MotionPlanner, Spread
from dubber.pipeline.mouth_lag import MIN_CORRELATION, best_lag
from dubber.pipeline.person_references import LandmarkReferences, people_in
from dubber.pipeline.timeline import Timeline

MAX_GAIN = 1.5
POWER = 0.5  # of the std ratio: the gain's shrinkage towards 1
MIN_FRAMES = 25  # frames with a face and a plan: fewer say nothing about the speaker's range
MAX_SECONDS = 30.0  # of the video's own speech read: the range is the speaker's, not the video length's
_BLOCK = 256
Reading = TypeVar("Reading")


def gain_from_openings(planned: np.ndarray, tracked: np.ndarray) -> float:
    """The spread for a plan whose opening on the video's own speech was ``planned`` where ``tracked`` was seen
    (NaN where either is missing)."""
    ok = np.isfinite(planned) & np.isfinite(tracked)
    if ok.sum() < MIN_FRAMES:
        return 1.0
    spread = float(np.std(planned[ok]))
    if spread < 1e-6:
        return 1.0
    return float(np.clip((float(np.std(tracked[ok])) / spread) ** POWER, 1.0, MAX_GAIN))


@dataclass(frozen=True)
class OwnSpeech:
    """What the video's own speech, planned and set against the mouth tracked on the same frames, says."""

    spread: Spread | None  # how a dub spreads its plan (None: not at all)
    lag: int | None  # frames the video's mouth follows its own sound (``mouth_lag``; None: it cannot be timed)
    # The plan's opening against the tracked one at the best shift (``mouth_lag.best_lag``): how well the video's
    # mouth follows its own sound at all; None with too few frames.
    match: float | None = None


def read_own_speech(
    model,
    own: StreamedFeatures,
    track: VideoTrack,
    fps: float,
    references: LandmarkReferences,
    pool: Executor | None = None,
) -> OwnSpeech:
    """The reading of ``track``'s video through its own speech ``own`` (the completer's features of its audio),
    planned in blocks so nothing grows with the video's length; ``pool``: threads an ensemble's members are
    predicted on at once. With a reference set per person, the spread's centre is each person's own mean plan."""
    with closing(own):
        timeline = Timeline.plan(track.frames, own.seconds, fps, "pingpong", False)
        frames = min(timeline.dub_frames, track.frames, int(MAX_SECONDS * fps))
        points, fill = track.points, track.filled_index()
        motion = MotionPlanner(model, own.features, fps, timeline, points, fill, references, pool=pool)
        people = people_in(references)
        total, count, openings = np.zeros((people, N_CONTENT, 2)), np.zeros(people), []
        for start in range(0, frames, _BLOCK):
            stop = min(frames, start + _BLOCK)
            content, sets = motion.content(start, stop), motion.sets(start, stop)
            seen = track.has_face[start:stop]
            for k in range(people):
                mine = seen if sets is None else seen & (sets == k)
                total[k] += content[mine].sum(0, dtype=np.float64)
                count[k] += int(mine.sum())
            openings.append(content_opening(content))
    if not openings or count.sum() == 0:
        return OwnSpeech(None, None)
    planned = np.concatenate(openings)
    tracked = np.where(track.has_face[:frames], track.opening[:frames], np.nan)
    found = best_lag(planned, tracked, fps)
    follows = found is None or found[1] >= MIN_CORRELATION  # None: too short to tell, read as before
    # A mouth that does not follow the video's sound (a voice-over, music) says nothing of how far the plan of a
    # voice falls short of this speaker: no spread.
    gain = gain_from_openings(planned, tracked) if follows else 1.0
    # A person with no planned frame here (seen only after the reading's first seconds) spreads about everyone's.
    centre = np.where(count[:, None, None] > 0, total / np.maximum(count, 1)[:, None, None], total.sum(0) / count.sum())
    spread = Spread(gain, (centre[0] if people == 1 else centre).astype(np.float32)) if gain != 1.0 else None
    lag = found[0] if found is not None and follows else None
    return OwnSpeech(spread, lag, None if found is None else found[1])


class HeardSpeech:
    """A video's own speech heard (the completer's features of its audio) in a thread of its own, ahead of its
    reading (beside the new speech's features, where a core is free), and taken once."""

    def __init__(self, hear: Callable[[], StreamedFeatures]) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dub-hear-ahead", initializer=start_torch_thread)
        self._heard = self._thread.submit(hear)
        self._taken = False

    def take(self) -> StreamedFeatures | None:
        """The features the first time (raising what hearing raised), None after: a reading closes them."""
        if self._taken:
            return None
        self._taken = True
        return self._heard.result()

    def close(self) -> None:
        """Waits for the hearing and closes what was not taken."""
        self._thread.shutdown(wait=True)
        if not self._taken:
            self._taken = True
            if self._heard.exception() is None:
                self._heard.result().close()


class LastReading:
    """The last reading of a video's own speech and the track and completer it was read with, held weakly (a dub
    must not keep its track alive): several dubs of one analysed video with one completer (``dub batch``) read the
    video's speech once."""

    def __init__(self) -> None:
        self._last: tuple[weakref.ref, weakref.ref, Any] | None = None

    def get(self, track: VideoTrack, model, read: Callable[[], Reading]) -> Reading:
        """What ``read`` returns (an ``OwnSpeech``, a ``SpeakingPeople``), read once for ``track`` and ``model``."""
        last = self._last
        if last is not None and last[0]() is track and last[1]() is model:
            return last[2]
        reading = read()
        self._last = (weakref.ref(track), weakref.ref(model), reading)
        return reading
