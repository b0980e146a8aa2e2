"""Who speaks in the video, shot by shot: the shots whose mouth follows the video's own sound.

A video cut between people shows listeners too (a reaction shot, an interviewer hearing the answer): their mouths
do not follow the sound heard while they are on screen, and a dub that redraws them to the new speech makes them
say another person's words. The same person speaks in some shots and listens in others, so the reading is made
per shot (a run of the track: from a scene cut, a lost face or a look cut to the next). The completer plans the
video's own speech (each frame from its own person's references, ``person_references``), and the planned opening
is set against the opening tracked on each shot's frames, and on each person's, at the best shift within 0.16 s
(``mouth_lag.best_lag``), in blocks (nothing grows with the video's length). A shot followed at
``MIN_CORRELATION`` or more speaks; a shot under 2 s cannot be read and goes with its person's reading over the
whole video (a person under 2 s counts as speaking); everyone is dubbed where nothing is followed (a voice-over,
music: the reading says nothing of who speaks). A mouth that does not move (its opening's std under
``STILL_MOUTH``) follows nothing, whatever a correlation of its tracker's jitter says. Measured in
docs/DUBBING.md "Several people in one video".
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import numpy as np

from dubber.audio.streaming import StreamedFeatures
from dubber.data.clip_arrays import content_opening
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.motion import MotionPlanner
from dubber.pipeline.mouth_lag import MAX_LAG_SECONDS, MIN_CORRELATION, best_lag
from dubber.pipeline.person_references import LandmarkReferences, PersonReferences, people_in
from dubber.pipeline.timeline import Timeline

_BLOCK = 256
# The std of a tracked mouth opening (inner lips' gap over the mouth's width) under which the mouth does not move:
# a face held on one frame reads 0.0005-0.001 (the tracker's jitter, which a correlation scales up to 0.49 at
# its best shift), the speakers of 57 shared clips 0.027 or more (scripts/mouth_movement.py).
STILL_MOUTH = 0.005


@dataclass(frozen=True)
class Shot:
    """A run of the track (``VideoTrack.runs``) and how well its mouth follows the video's own sound."""

    first: int  # its first frame (the run's name)
    stop: int  # one past its last frame with a face
    person: int  # whom it shows, as ``--person`` counts them
    match: float | None  # None: too short to tell


@dataclass(frozen=True)
class SpeakingPeople:
    """Per person, as ``--person`` counts them, how well their mouth follows the video's own sound (None: too few
    frames to tell), and the same per shot."""

    matches: tuple[float | None, ...]
    shots: tuple[Shot, ...] = ()

    @property
    def anyone_follows(self) -> bool:
        found = [*self.matches, *(shot.match for shot in self.shots)]
        return any(m is not None and m >= MIN_CORRELATION for m in found)

    def person_speaks(self, person: int) -> bool:
        """Over the whole video (the reading of their shots too short to tell; everyone where nothing follows)."""
        match = self.matches[person]
        return not self.anyone_follows or match is None or match >= MIN_CORRELATION

    def shot_speaks(self, shot: Shot) -> bool:
        """Whether ``shot`` is dubbed: by its own reading, or its person's where it is too short to tell."""
        if not self.anyone_follows or shot.match is None:
            return self.person_speaks(shot.person)
        return shot.match >= MIN_CORRELATION

    def kept_shots(self) -> list[Shot]:
        """The shots of listeners, kept as they are."""
        return [shot for shot in self.shots if not self.shot_speaks(shot)]

    def speaking(self) -> list[int]:
        """The people dubbed in some frames: in a shot that speaks, or speaking over the whole video where no shot
        was read."""
        if not self.shots:
            return [k for k in range(len(self.matches)) if self.person_speaks(k)]
        return sorted({shot.person for shot in self.shots if self.shot_speaks(shot)})


def planned_opening(
    model, speech: StreamedFeatures, track: VideoTrack, fps: float, references: LandmarkReferences
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) the mouth opening the completer plans for ``speech`` (its features, closed here) on the tracked frames it
    covers (``n``: the fewer of the video's frames and the speech's), planned in blocks so nothing grows with the
    video's length, and (n,) the reference set (person) each frame was planned with."""
    with closing(speech):
        timeline = Timeline.plan(track.frames, speech.seconds, fps, "pingpong", False)
        frames = min(timeline.dub_frames, track.frames)
        motion = MotionPlanner(model, speech.features, fps, timeline, track.points, track.filled_index(), references)
        openings, sets = [np.zeros(0, np.float32)], [np.zeros(0, np.int64)]
        for start in range(0, frames, _BLOCK):
            stop = min(frames, start + _BLOCK)
            openings.append(content_opening(motion.content(start, stop)))
            who = motion.sets(start, stop)
            sets.append(np.zeros(stop - start, np.int64) if who is None else who)
    return np.concatenate(openings), np.concatenate(sets)


def read_speaking(
    model,
    own: StreamedFeatures,
    track: VideoTrack,
    fps: float,
    references: LandmarkReferences,
) -> SpeakingPeople:
    """Each person's and each shot's match between the completer's plan of the video's own speech ``own`` and the
    mouth tracked on their frames."""
    planned, who = planned_opening(model, own, track, fps, references)
    people, frames = people_in(references), len(planned)
    if not frames:
        return SpeakingPeople((None,) * people)
    tracked = np.where(track.has_face[:frames], track.opening[:frames], np.nan)
    matches = tuple(_match(planned, np.where(who == k, tracked, np.nan), fps) for k in range(people))
    shots = []
    runs = track.runs[:frames] if track.runs is not None else np.full(frames, -1)
    for first in np.unique(runs[runs >= 0]).tolist():
        ran = runs == first
        person = int(np.bincount(who[ran]).argmax())
        stop = int(np.flatnonzero(ran)[-1]) + 1
        shots.append(Shot(int(first), stop, person, _match(planned, np.where(ran, tracked, np.nan), fps)))
    return SpeakingPeople(matches, tuple(shots))


def mouth_reading(
    planned: np.ndarray, tracked: np.ndarray, fps: float, max_seconds: float = MAX_LAG_SECONDS
) -> tuple[float | None, int | None]:
    """(match, lag): how well the mouth ``tracked`` (NaN where not theirs) follows the opening ``planned`` at the
    best shift within ``max_seconds``, and that shift (``mouth_lag.best_lag``); (0, None) for a mouth that does not
    move, whatever a correlation of its tracker's jitter says; (None, None) with too few frames."""
    found = best_lag(planned, tracked, fps, max_seconds)
    if found is None:
        return None, None
    if float(np.nanstd(tracked)) < STILL_MOUTH:
        return 0.0, None
    return round(found[1], 4), found[0]


def _match(planned: np.ndarray, tracked: np.ndarray, fps: float) -> float | None:
    return mouth_reading(planned, tracked, fps)[0]


def redrawn_frames(track: VideoTrack, references: LandmarkReferences, reading: SpeakingPeople) -> np.ndarray:
    """(N,) the frames with a face that ``reading`` dubs: those of the shots that speak, and beyond the shots read
    (frames past the video's own sound) those of the people who speak."""
    who = references.of_frame if isinstance(references, PersonReferences) else np.zeros(track.frames, np.int64)
    people = [k for k in range(len(reading.matches)) if reading.person_speaks(k)]
    redrawn = track.has_face & np.isin(who, people)
    for shot in reading.shots:
        ran = track.runs == shot.first
        redrawn[ran] = track.has_face[ran] & reading.shot_speaks(shot)
    return redrawn
