"""Lip and jaw points for a range of output frames, chunk by chunk, equal to predicting the whole sequence at once.

The completer predicts T-frame windows, every other frame, and averages every window covering a frame; a chunk is
predicted with T-1 frames of context on each side and the whole sequence's windows, so exactly the windows of a
whole-sequence pass cover each of its frames and chunk boundaries cannot show. The features of the new audio are
read per chunk from a file on disk (``dubber.audio.streaming``), so no stage holds anything for the whole audio.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

import numpy as np

from dubber.audio.features import AudioFeatures
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures
from dubber.cpu_threads import start_torch_thread
from dubber.face.landmarks import JAW, N_POSE
from dubber.models.landmark_completer import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.landmark_sequence import predict_sequence
from dubber.pipeline.person_references import LandmarkReferences, PersonReferences, sets_of_frames
from dubber.pipeline.timeline import Timeline

Features = AudioFeatures | SpeechFeatures | MelAndSpeechFeatures
# Output frames predicted at a time: the dub asks for chunks of a few frames, and serves them from the block.
_BLOCK = 64
# The completer's windows start every other frame, so each frame's points average 2 or 3 windows rather than all T = 5
# that cover it: half the completer's work, and the split protocol's plan the same (dev unseen 0.669 -> 0.671, the
# long clips 0.564 -> 0.564; docs/DUBBING.md "Speed and memory").
PLAN_STRIDE = 2


def member_windows(config: LandmarkCompleterConfig, features: Features, times: np.ndarray) -> np.ndarray:
    """The windows a completer with ``config`` reads at ``times`` from ``features``: AudioFeatures, SpeechFeatures,
    or MelAndSpeechFeatures (which holds both, so that every member of an ensemble finds its own input)."""
    if isinstance(features, MelAndSpeechFeatures) and config.audio_input == "mel":
        return features.mel.windows(times, config.audio_steps)
    if isinstance(features, MelAndSpeechFeatures) and config.audio_input == "speech":
        features = features.speech
    return features.windows(times, config.audio_steps)


def predict_from_features(
    model: LandmarkCompleter | LandmarkEnsemble,
    features: Features,
    times: np.ndarray,
    pose: np.ndarray,
    refs: np.ndarray,
    pool: Executor | None = None,
    offset: int = 0,
    length: int | None = None,
    frame_sets: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 57, 2) lip and jaw points for frames at ``times`` (a completer, or an ensemble's weighted mean);
    ``pool``: an ensemble's members predicted on its threads, at once (summed in the same order: the same values);
    ``offset``, ``length``: the frames are frames ``offset..`` of a sequence of ``length`` (``predict_sequence``);
    ``frame_sets``: ``refs`` is a set per person and each frame reads the one named here."""
    if isinstance(model, LandmarkEnsemble):
        members = [model.members[k] for k in model.weights]
        predict = partial(
            predict_from_features,
            features=features,
            times=times,
            pose=pose,
            refs=refs,
            offset=offset,
            length=length,
            frame_sets=frame_sets,
        )
        outs = map(predict, members) if pool is None else pool.map(partial(_on_torch_thread, predict), members)
        return sum(w * out for w, out in zip(model.weights.values(), outs, strict=True))
    windows = member_windows(model.config, features, times)
    return predict_sequence(
        model, windows, pose, refs, stride=PLAN_STRIDE, offset=offset, length=length, frame_sets=frame_sets
    )


def _on_torch_thread(predict: Callable[[LandmarkCompleter], np.ndarray], member: LandmarkCompleter) -> np.ndarray:
    start_torch_thread()  # a pool's thread computes as the caller's does (dubber.cpu_threads)
    return predict(member)


class MotionPlanner:
    """Target landmarks (131 points: the source frame's pose, the predicted lips and jaw) per output frame."""

    def __init__(
        self,
        model: LandmarkCompleter | LandmarkEnsemble,
        features: Features,
        fps: float,
        timeline: Timeline,
        source_points: np.ndarray,
        fill: np.ndarray,
        references: LandmarkReferences,
        spread: Spread | None = None,
        pool: Executor | None = None,
    ) -> None:
        """``source_points`` (N_source, 131, 2) with NaN where a frame has no face; ``fill`` (N_source,) the frame
        whose points stand in for each (``VideoTrack.filled_index``); ``references`` one set for every frame or a
        set per person (``person_references``); ``spread`` widens the planned movement
        (dubber/pipeline/articulation.py); ``pool``: threads an ensemble's members are predicted on at once."""
        self.model = model
        self.features = features
        self.fps = float(fps)
        self.timeline = timeline
        self.source_points = source_points
        self.fill = fill
        self.references = references
        # The sets the completer reads: (R, 131, 2) for every frame, or (K, R, 131, 2) one per person.
        self._sets = (references.sets if isinstance(references, PersonReferences) else references).astype(np.float32)
        self.spread = spread
        self.pool = pool
        self.context = model.config.window - 1
        self._block: tuple[int, int, np.ndarray] | None = None  # the last predicted range and its points

    def pose(self, start: int, stop: int) -> np.ndarray:
        idx = self.timeline.dubbed_source_indices(start, stop)
        return self.source_points[self.fill[idx], :N_POSE]

    def content(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, 57, 2) predicted lip and jaw points for dubbed output frames ``start..stop-1``."""
        end = self.timeline.dub_frames
        if not 0 <= start < stop <= end:
            raise ValueError(f"frames {start}..{stop} outside the dubbed range 0..{end}")
        held = self._block
        if held is None or not held[0] <= start < stop <= held[1]:
            # A block ahead of the dub's chunks: each block costs 2 (T - 1) frames of context windows, which a
            # chunk of 8 frames alone paid for every 8 frames (1.5 x the windows of a whole-sequence pass).
            last = max(stop, min(end, start + _BLOCK))
            held = self._block = (start, last, self._predict(start, last))
        return held[2][start - held[0] : stop - held[0]]

    def plan_ahead(self, pool: Executor | None = None) -> None:
        """Predict the first block now (the one the dub's first chunk reads), an ensemble's members on ``pool``'s
        threads at once, where they are not already."""
        kept, self.pool = self.pool, pool or self.pool
        try:
            self.content(0, 1)
        finally:
            self.pool = kept

    def sets(self, start: int, stop: int) -> np.ndarray | None:
        """(stop - start,) the reference set each dubbed frame's plan reads (None: one for all)."""
        return sets_of_frames(self.references, self.fill[self.timeline.dubbed_source_indices(start, stop)])

    def _predict(self, start: int, stop: int) -> np.ndarray:
        lo, hi = max(0, start - self.context), min(self.timeline.dub_frames, stop + self.context)
        times = np.arange(lo, hi) / self.fps
        pose, frames, sets = self.pose(lo, hi), self.timeline.dub_frames, self.sets(lo, hi)
        out = predict_from_features(self.model, self.features, times, pose, self._sets, self.pool, lo, frames, sets)
        out = out[start - lo : stop - lo]
        if self.spread is None:
            return out
        return self.spread(out, None if sets is None else sets[start - lo : stop - lo])

    def targets(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, 131, 2): pose from the source frames, content from the audio (the jaw's ends from the
        source frames too: ``anchored_jaw``)."""
        idx = self.timeline.dubbed_source_indices(start, stop)
        source_jaw = self.source_points[self.fill[idx], N_POSE : N_POSE + len(JAW)]
        content = anchored_jaw(self.content(start, stop), source_jaw)
        return np.concatenate([self.pose(start, stop), content], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Spread:
    """The planned lips and jaw moved ``gain`` times as far from ``centre``: the mean of this speaker's plan, (57, 2),
    or of each person's, (K, 57, 2) (dubber/pipeline/articulation.py chooses both)."""

    gain: float
    centre: np.ndarray

    def __call__(self, content: np.ndarray, sets: np.ndarray | None = None) -> np.ndarray:
        """``content`` (N, 57, 2) spread; ``sets`` (N,): each frame's person, where the centre is per person."""
        centre = self.centre if self.centre.ndim == 2 else self.centre[0 if sets is None else sets]
        return (centre + self.gain * (content - centre)).astype(content.dtype)


def anchored_jaw(content: np.ndarray, source_jaw: np.ndarray) -> np.ndarray:
    """``content`` (N, 57, 2) with its jaw (the first 17, ear to ear) moved so its two ends lie on ``source_jaw``'s
    (N, 17, 2), the move fading to none at the chin. The jaw's ends sit by the ears, where the mandible turns: speech
    hardly moves them, the head's pose does, and the completer places them as if the head were frontal when it
    is turned (docs/RENDERER.md "Pose")."""
    n = len(JAW)
    half = (n - 1) / 2
    fade = np.clip((half - np.arange(n)) / half, 0.0, 1.0)  # 1 at the first end, 0 from the chin on
    out = content.copy()
    jaw = out[:, :n]
    jaw += fade[None, :, None] * (source_jaw[:, :1] - jaw[:, :1])
    jaw += fade[::-1][None, :, None] * (source_jaw[:, -1:] - jaw[:, -1:])
    return out
