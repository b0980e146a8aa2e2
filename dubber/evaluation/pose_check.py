"""How a dub holds up as the head turns: per output frame, where the rendered jaw lies against the jaw it was asked
for, and the edge energy along the redrawn region's border against the source frame's (a doubled or ghosted
contour adds edges there), with the head's roll and yaw; and a clip whose head rolls (the demo's portrait turned in the
image plane from -ROLL to +ROLL degrees and back). Used by tests/test_pose_roll.py and ``scripts/pose_sheet.py``."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from dubber.evaluation.dub_metrics import face_regions, gradient_energy, screen_points
from dubber.face.landmarks import ALL_INDICES, JAW, LEFT_EYE_OUTER, N_POSE, RIGHT_EYE_OUTER
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter
from dubber.pipeline.dubbing import DubbingPipeline
from dubber.pipeline.timeline import Timeline

_JAW = np.asarray([ALL_INDICES.index(i) for i in JAW])
_EYES = (ALL_INDICES.index(RIGHT_EYE_OUTER), ALL_INDICES.index(LEFT_EYE_OUTER))

ROLL = 20.0  # degrees: the pose range a dub must hold without ghosting (issue bar: roll up to +-20)
_CENTRE = (225.0, 150.0)  # the astronaut's face in skimage's 512 px portrait


def roll_angles(frames: int) -> np.ndarray:
    """Degrees per frame: 0 -> +ROLL -> -ROLL -> 0, one sine period."""
    return ROLL * np.sin(2 * np.pi * np.arange(frames) / frames)


def make_rolling_clip(path: Path, frames: int = 50, size: int = 256, fps: int = 25) -> Path:
    from skimage import data

    portrait = data.astronaut()
    options = VideoEncodeOptions(crf=12, preset="veryfast")
    with VideoWriter(path, width=size, height=size, fps=Fraction(fps), options=options, overwrite=True) as writer:
        for angle in roll_angles(frames):
            m = cv2.getRotationMatrix2D(_CENTRE, float(angle), 1.1)
            m[:, 2] += (256.0 - _CENTRE[0], 256.0 - _CENTRE[1])  # the face at the middle of the frame
            m *= size / 512
            frame = cv2.warpAffine(portrait, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            writer.write(frame)
    return path


@dataclass
class PoseCheck:
    roll: np.ndarray  # (F,) degrees, the source frame's head roll (eye line against the horizontal)
    yaw: np.ndarray  # (F,) degrees, the source frame's head turn (the tracker's)
    jaw_error: np.ndarray  # (F,) mean distance of the output's jaw points from the planned ones, inter-ocular units
    edge_ratio: np.ndarray  # (F,) gradient energy on the redrawn region's border, output over source frame


def check_pose(pipe: DubbingPipeline, video: Path, audio: Path, output: Path) -> PoseCheck:
    """Dub ``video`` with ``audio`` into ``output`` and score every dubbed frame with a face in both."""
    source = pipe.analyse(video)
    planned = pipe.planned_landmarks(source, audio)
    result = pipe(video, audio, output, analysis=source, overwrite=True)
    found = pipe.analyse(output)
    timeline = Timeline.plan(source.frames, result.dubbed_frames / result.fps, result.fps)
    idx = np.asarray(timeline.source_indices(0, result.dubbed_frames))
    transforms = source.transforms[idx]
    aspect = source.aspect
    want = screen_points(
        np.concatenate([source.points[idx][:, :N_POSE], planned[:, N_POSE:]], axis=1), transforms, aspect
    )
    got = screen_points(found.points[: len(idx)], found.transforms[: len(idx)], found.aspect)
    eyes = want[:, _EYES[1]] - want[:, _EYES[0]]
    inter_ocular = np.linalg.norm(eyes, axis=-1)
    roll = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
    jaw = np.linalg.norm(got[:, _JAW] - want[:, _JAW], axis=-1).mean(-1) / inter_ocular
    source_edges = np.full(source.frames, np.nan)  # per source frame, so each is decoded once
    for frame in VideoReader(video):
        tf = source.transforms[frame.index]
        if np.isfinite(tf).all():
            source_edges[frame.index] = gradient_energy(
                frame.image, face_regions(tf, frame.image.shape[:2], aspect=aspect)[1]
            )
    ratio = np.full(len(idx), np.nan)
    for i, frame in enumerate(VideoReader(output)):
        if i >= len(idx):
            break
        tf = transforms[i]
        if np.isfinite(tf).all() and source_edges[idx[i]] > 0:
            ring = face_regions(tf, frame.image.shape[:2], aspect=aspect)[1]
            ratio[i] = gradient_energy(frame.image, ring) / source_edges[idx[i]]
    return PoseCheck(roll, source.yaw[idx], jaw, ratio)
