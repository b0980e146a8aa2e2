"""Who speaks in the video: of the people pass 1 tells apart, those whose mouths follow the video's own sound.

A video cut between people shows listeners too (a reaction shot, an interviewer hearing the answer): their mouths
do not follow the sound heard while they are on screen, and a dub that redraws them to the new speech makes them
say another person's words. The completer plans the video's own speech (each frame from its own person's
references, ``person_references``), and each person's planned opening is set against the opening tracked on their
frames at the best shift within 0.16 s (``mouth_lag.best_lag``), over the whole video, in blocks (nothing grows
with its length). A person followed at ``MIN_CORRELATION`` or more speaks; a person with under 2 s of frames cannot
be read and counts as speaking, as does everyone where nobody is followed (a voice-over, music: the reading says
nothing of who speaks). A mouth that does not move (its opening's std under ``STILL_MOUTH``) follows nothing,
whatever a correlation of its tracker's jitter says. Measured in docs/DUBBING.md "Several people in one video".
"""

from __future__ import annotations

from concurrent.futures import Executor
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from dubber.audio.streaming import StreamedFeatures
from dubber.data.clip_arrays import content_opening
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.motion import MotionPlanner
from dubber.pipeline.mouth_lag import MIN_CORRELATION, best_lag
from dubber.pipeline.person_references import LandmarkReferences, PersonReferences, people_in
from dubber.pipeline.timeline import Timeline

_BLOCK = 256
# The std of a tracked mouth opening (inner lips' gap over the mouth's width) under which the mouth does not move:
# a face held on one frame reads 0.0005-0.001 (the tracker's jitter, which a correlation scales up to 0.49 at
# its best shift), the speakers of 57 shared clips 0.027 or more (scripts/mouth_movement.py).
STILL_MOUTH = 0.005


@dataclass(frozen=True)
class SpeakingPeople:
    """Per person, as ``--person`` counts them, how well their mouth follows the video's own sound (None: too few
    frames to tell)."""

    matches: tuple[float | None, ...]

    @property
    def anyone_follows(self) -> bool:
        return any(m is not None and m >= MIN_CORRELATION for m in self.matches)

    def speaking(self) -> list[int]:
        """The people who speak (everyone where nobody's mouth follows the sound)."""
        if not self.anyone_follows:
            return list(range(len(self.matches)))
        return [k for k, m in enumerate(self.matches) if m is None or m >= MIN_CORRELATION]


def read_speaking(
    model,
    own: StreamedFeatures,
    track: VideoTrack,
    fps: float,
    references: LandmarkReferences,
    pool: Executor | None = None,
) -> SpeakingPeople:
    """Each person's match between the completer's plan of the video's own speech ``own`` and their tracked mouth."""
    with closing(own):
        timeline = Timeline.plan(track.frames, own.seconds, fps, "pingpong", False)
        frames = min(timeline.dub_frames, track.frames)
        motion = MotionPlanner(model, own.features, fps, timeline, track.points, track.filled_index(), references)
        openings, sets = [], []
        for start in range(0, frames, _BLOCK):
            stop = min(frames, start + _BLOCK)
            openings.append(content_opening(motion.content(start, stop)))
            who = motion.sets(start, stop)
            sets.append(np.zeros(stop - start, np.int64) if who is None else who)
    people = people_in(references)
    if not openings:
        return SpeakingPeople((None,) * people)
    planned, who = np.concatenate(openings), np.concatenate(sets)
    tracked = np.where(track.has_face[:frames], track.opening[:frames], np.nan)
    matches = []
    for k in range(people):
        theirs = np.where(who == k, tracked, np.nan)
        found = best_lag(planned, theirs, fps)
        still = found is not None and float(np.nanstd(theirs)) < STILL_MOUTH
        matches.append(None if found is None else 0.0 if still else round(found[1], 4))
    return SpeakingPeople(tuple(matches))


def redrawn_frames(track: VideoTrack, references: LandmarkReferences, speaking: list[int]) -> np.ndarray:
    """(N,) the frames with a face of the people in ``speaking`` (ranks, as ``--person`` counts them)."""
    if not isinstance(references, PersonReferences):
        return track.has_face.copy() if 0 in speaking else np.zeros(track.frames, bool)
    return track.has_face & np.isin(references.of_frame, speaking)
