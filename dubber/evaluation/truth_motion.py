"""The split protocol's ceiling for the rendering: the first half drawn from the second half's *tracked* lips and
jaw instead of the completer's plan (method "true_landmarks" in ``dub eval --protocol split``).

Dubbed frame i takes the lips and jaw tracked on original frame h + i, carried to frame i's head pose by the
least-squares affine map between the two frames' upper faces (the map the completer's references take,
``dubber.models.reference_warp``), the jaw's ends on frame i's own (``anchored_jaw``, as the dub does). What the
rendering loses of the truth here, it loses of any plan: the opening correlation of this method against the truth
bounds what a better completer alone could reach with this renderer and this measure.
"""

from __future__ import annotations

import numpy as np
import torch

from dubber.face.landmarks import JAW, N_POSE
from dubber.models.reference_warp import warp_references
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.articulation import OwnSpeech
from dubber.pipeline.dubbing import DubbingPipeline
from dubber.pipeline.motion import anchored_jaw
from dubber.pipeline.timeline import Timeline


class TruthMotion:
    """Target landmarks per dubbed frame from ``truth`` (N, 131, 2) unit-crop points tracked on the frames the dub
    should show (NaN without a face: the nearest tracked frame stands in)."""

    def __init__(self, source: VideoTrack, timeline: Timeline, truth: np.ndarray) -> None:
        self.source_points = source.points
        self.fill = source.filled_index()
        self.timeline = timeline
        tracked = np.flatnonzero(np.isfinite(truth).all(axis=(1, 2)))
        if len(tracked) == 0:
            raise ValueError("the truth has no tracked face")
        nearest = tracked[np.abs(np.arange(len(truth))[:, None] - tracked[None]).argmin(1)]
        self.truth = truth[nearest].astype(np.float32)

    def targets(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, 131, 2): the source frames' pose, the truth's lips and jaw carried to it."""
        pose = self.source_points[self.fill[self.timeline.dubbed_source_indices(start, stop)]].astype(np.float32)
        truth = self.truth[np.minimum(np.arange(start, stop), len(self.truth) - 1)]
        content = warp_references(
            torch.from_numpy(truth[:, None, :N_POSE]),
            torch.from_numpy(truth[:, None, N_POSE:]),
            torch.from_numpy(pose[:, None, :N_POSE]),
        )[:, 0].numpy()
        content = anchored_jaw(content, pose[:, N_POSE : N_POSE + len(JAW)])
        return np.concatenate([pose[:, :N_POSE], content], axis=1).astype(np.float32)


class TruthLandmarksPipeline(DubbingPipeline):
    """``pipe``'s models and options, drawing each dubbed frame from ``truth`` instead of the completer's plan."""

    reads_own_speech = False

    def __init__(self, pipe: DubbingPipeline, truth: np.ndarray) -> None:
        super().__init__(
            pipe.landmarks,
            pipe.renderer,
            options=pipe.options.updated(adapt="off"),  # the plan is not used: nothing to adapt
            backend_factory=pipe.backend_factory,
            name=pipe.name,
            speech_encoder=pipe.speech_encoder,
            runtime=pipe.runtime,
        )
        self.truth = truth

    def _articulation(self, job, track, landmarks, pool=None) -> OwnSpeech:
        return OwnSpeech(None, None)  # the truth's movement is not widened

    def _motion(self, job, track, timeline, landmarks, references, own, pool=None) -> TruthMotion:
        return TruthMotion(track, timeline, self.truth)
