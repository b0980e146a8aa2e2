"""Follow one face through a frame stream: landmarks per frame, or None when there is no face.

The landmark model runs on a square region of interest (ROI) around the tracked face, resampled to a fixed size:
small faces in wide shots get enough pixels, the chosen face keeps its identity when others are present, and the
ROI moves only when the face drifts, so the backend sees a steady image and can track between calls. The face is
(re)acquired by detection on the whole frame at the start, after a loss and after a scene cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from dubber.face.aligner import FaceAligner, Similarity
from dubber.face.backend import FaceBackend, FaceBox
from dubber.face.landmarks import head_angles
from dubber.face.smoothing import OneEuroFilter
from dubber.face.warp import warp_to_square
from dubber.log import get_logger
from dubber.media.scene_cut import SceneCutDetector, colour_histogram
from dubber.media.video_reader import Frame

log = get_logger("face")


@dataclass(frozen=True)
class TrackerOptions:
    face_index: int = 0  # which face to follow: 0 the largest, 1 the second largest, ...
    # ... or, where given, the leftmost ("left") or rightmost ("right") of the faces at least half the largest's size
    face_side: str | None = None
    roi_size: int = 256  # pixels of the resampled ROI handed to the backend
    roi_from_detection: float = 2.2  # ROI side / detector box side (detector boxes are tight: brows to mouth)
    roi_from_landmarks: float = 1.6  # ROI side / landmark box side (forehead to chin)
    roi_tolerance: float = 0.15  # re-centre the ROI when the face drifts by this fraction of the ROI side
    # One-Euro parameters. The transform is smoothed hard (the crop must not jitter); landmarks lightly, in crop
    # units, with a high beta so fast speech motion passes unfiltered.
    transform_min_cutoff: float = 0.6
    transform_beta: float = 4.0
    landmark_min_cutoff: float = 3.0
    landmark_beta: float = 20.0
    smooth_landmarks: bool = True
    scene_cut_threshold: float = 0.6
    pixel_aspect: float = 1.0  # a frame pixel's width over its height: an anamorphic video's crops are square on screen
    # In a shot of several faces, a face lost (turned away, covered) is looked for where it was last seen for this
    # long, rather than chosen again by size: the other person, then the only face found, is not taken for it.
    refind_seconds: float = 2.0


@dataclass
class TrackedFace:
    """One frame's face. ``points`` are smoothed; ``raw_points`` are the backend's own."""

    points: np.ndarray  # (478, 3) float32, frame pixels (z in the same units)
    raw_points: np.ndarray
    transform: Similarity  # smoothed frame -> unit crop similarity (see FaceAligner)
    angles: tuple[float, float, float]  # yaw, pitch, roll in degrees
    box: FaceBox = field(repr=False)  # landmark bounding box

    @property
    def size(self) -> float:
        """Face size in pixels: the larger side of the landmark box, as wide as it is shown (anamorphic video)."""
        return max(self.box.width * self.transform.aspect, self.box.height)


@dataclass
class TrackStep:
    frame: Frame
    face: TrackedFace | None
    scene_cut: bool
    reacquired: bool  # a detection ran on this frame (start, loss, cut)


FACE_SIDES = ("left", "right")
# A face counts for "left" or "right" at this fraction of the largest one's area or more (its side at half or more):
# a small face in the background, or on a poster, is not the person meant.
_SIDE_AREA = 0.25


def _by_side(boxes: list[FaceBox], side: str) -> FaceBox | None:
    """Of ``boxes`` (largest first), the leftmost or rightmost of those near the largest's size."""
    near = [b for b in boxes if b.area >= _SIDE_AREA * boxes[0].area] if boxes else []
    if not near:
        return None
    return (min if side == "left" else max)(near, key=lambda b: b.center[0])


def _where_it_was(boxes: list[FaceBox], last: FaceBox) -> FaceBox | None:
    """Of detected ``boxes``, the one whose centre is nearest the ``last`` tracked face's, if it lies within that
    face's size of it (a detector's box sits inside the landmarks' box, brows to mouth, so not on its centre)."""
    reach = max(last.width, last.height)
    near = [(np.hypot(b.center[0] - last.center[0], b.center[1] - last.center[1]), k) for k, b in enumerate(boxes)]
    near = [(d, k) for d, k in near if d <= reach]
    return boxes[min(near)[1]] if near else None


def _box_of(points: np.ndarray) -> FaceBox:
    x0, y0 = points[:, :2].min(0)
    x1, y1 = points[:, :2].max(0)
    return FaceBox(float(x0), float(y0), float(x1), float(y1), 1.0)


@dataclass(frozen=True)
class _Roi:
    """A square on screen around the face: ``side`` pixel heights, ``side / aspect`` stored pixels wide on an
    anamorphic frame, so that the backend sees the face as shaped on screen (a squeezed face misleads the mesh: the
    crop it gave was 8% too large on 64:45 pixels)."""

    cx: float
    cy: float
    side: float
    aspect: float = 1.0

    @classmethod
    def around(cls, box: FaceBox, factor: float, aspect: float = 1.0) -> _Roi:
        cx, cy = box.center
        return cls(cx, cy, factor * max(box.width * aspect, box.height), aspect)

    def extract(self, image: np.ndarray, size: int) -> np.ndarray:
        k = size / self.side
        kx = k * self.aspect
        x0, y0 = self.cx - self.side / (2 * self.aspect), self.cy - self.side / 2
        m = np.array([[kx, 0, -x0 * kx], [0, k, -y0 * k]], dtype=np.float64)
        return warp_to_square(image, m, size, border=cv2.BORDER_CONSTANT)

    def to_frame(self, points: np.ndarray, size: int) -> np.ndarray:
        s = self.side / size
        out = points.astype(np.float32).copy()
        out[:, 0] = points[:, 0] * (s / self.aspect) + self.cx - self.side / (2 * self.aspect)
        out[:, 1] = points[:, 1] * s + self.cy - self.side / 2
        out[:, 2] = points[:, 2] * s
        return out


@dataclass(frozen=True)
class PreparedFrame:
    """``FaceTracker.prepare``'s work on a frame, done ahead of ``step``."""

    histogram: np.ndarray  # colour_histogram of the frame
    roi: _Roi | None  # the tracker's region when it was made
    roi_image: np.ndarray | None  # the frame cut out there


class FaceTracker:
    """Per-frame landmarks for one face of a video. Owns its backend unless one is passed in."""

    def __init__(
        self,
        backend: FaceBackend | None = None,
        options: TrackerOptions | None = None,
        aligner: FaceAligner | None = None,
    ) -> None:
        if backend is None:
            from dubber.face.mediapipe_backend import MediaPipeBackend

            backend = MediaPipeBackend()
            self._owns_backend = True
        else:
            self._owns_backend = False
        self.backend = backend
        self.options = options or TrackerOptions()
        self.aligner = aligner or FaceAligner(size=1)
        self._scene = SceneCutDetector(self.options.scene_cut_threshold)
        self._transform_filter = OneEuroFilter(self.options.transform_min_cutoff, self.options.transform_beta)
        self._landmark_filter = OneEuroFilter(self.options.landmark_min_cutoff, self.options.landmark_beta)
        self._roi: _Roi | None = None
        self._ref_scale = 1.0
        self.most_faces = 0  # the most faces one detection found: says why a ``face_index`` is never tracked
        self._shot_faces = 0  # the most faces one detection found since the last scene cut
        self._last_seen: tuple[FaceBox, float] | None = None  # the followed face's box and time, in this shot

    # -- public ------------------------------------------------------------------------------------------------
    def track(self, frames: Iterable[Frame]) -> Iterator[TrackStep]:
        for frame in frames:
            yield self.step(frame)

    def prepare(self, frame: Frame) -> PreparedFrame:
        """What ``step(frame, prepared)`` can be handed, made by a thread ahead of the tracker (the decoding one), so
        that the tracker's own frame-after-frame work is less: the scene-cut histogram, and the frame's region of
        interest cut out where the tracker's region is now (the region seldom moves: ``step`` uses the cut-out only
        if its region is still the one it tracks with, so the result is the same as without)."""
        roi = self._roi
        size = self.options.roi_size
        return PreparedFrame(
            colour_histogram(frame.image), roi, None if roi is None else roi.extract(frame.image, size)
        )

    def step(self, frame: Frame, prepared: PreparedFrame | None = None) -> TrackStep:
        image = frame.image
        cut = self._scene(image) if prepared is None else self._scene.is_cut(prepared.histogram)
        if cut:
            log.debug("scene cut at frame %d", frame.index)
            self._lose()
            self._shot_faces, self._last_seen = 0, None
        reacquired = self._roi is None
        if reacquired:
            self._acquire(image, frame.time)
        points = self._landmarks(image, prepared) if self._roi is not None else None
        if points is None and self._roi is not None and not reacquired:
            self._lose()  # tracking lost: look again on this same frame
            reacquired = True
            self._acquire(image, frame.time)
            points = self._landmarks(image, prepared) if self._roi is not None else None
        if points is None:
            self._lose()
            return TrackStep(frame, None, cut, reacquired)
        face = self._finish(points, frame.time)
        self._last_seen = (face.box, frame.time)
        return TrackStep(frame, face, cut, reacquired)

    def reset(self) -> None:
        """Forget the video tracked so far: the next frame starts a new one."""
        self._lose()
        self._scene.reset()
        self._shot_faces, self._last_seen = 0, None

    def close(self) -> None:
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------
    def _lose(self) -> None:
        if self._roi is None and not self._transform_filter.primed:
            return  # already lost: restarting the backend's graph every face-less frame costs time
        self._roi = None
        self.backend.reset()
        self._transform_filter.reset()
        self._landmark_filter.reset()

    def _acquire(self, image: np.ndarray, t: float) -> None:
        """Detect faces on the whole frame and put the ROI on the chosen one (left unset when it is not there): by
        size, or in a shot of several faces where the face followed was lost a moment ago, the one found where it
        was (``refind_seconds``)."""
        boxes = sorted(self.backend.detect(image), key=lambda b: b.area, reverse=True)
        self.most_faces = max(self.most_faces, len(boxes))
        self._shot_faces = max(self._shot_faces, len(boxes))
        chosen = _by_side(boxes, self.options.face_side) if self.options.face_side else None
        if not self.options.face_side and len(boxes) > self.options.face_index:
            chosen = boxes[self.options.face_index]
        if (
            self._last_seen is not None
            and self._shot_faces > 1
            and 0 <= t - self._last_seen[1] <= self.options.refind_seconds
        ):
            chosen = _where_it_was(boxes, self._last_seen[0])
        if chosen is not None:
            factor = self.backend.roi_per_box or self.options.roi_from_detection
            self._roi = _Roi.around(chosen, factor, self.options.pixel_aspect)
            self.backend.reset()

    def _landmarks(self, image: np.ndarray, prepared: PreparedFrame | None = None) -> np.ndarray | None:
        assert self._roi is not None
        size = self.options.roi_size
        # The same region object: ``_follow`` and ``_acquire`` replace it, never change it.
        if prepared is not None and prepared.roi is self._roi and prepared.roi_image is not None:
            cut_out = prepared.roi_image
        else:
            cut_out = self._roi.extract(image, size)
        local = self.backend.landmarks(cut_out)
        if local is None:
            return None
        points = self._roi.to_frame(local, size)
        self._follow(_box_of(points))
        return points

    def _follow(self, box: FaceBox) -> None:
        """Re-centre the ROI when the face has drifted or changed size; otherwise leave it still."""
        assert self._roi is not None
        want = _Roi.around(box, self.options.roi_from_landmarks, self.options.pixel_aspect)
        tol = self.options.roi_tolerance
        moved = np.hypot(want.cx - self._roi.cx, want.cy - self._roi.cy) > tol * self._roi.side
        resized = abs(np.log(want.side / self._roi.side)) > tol
        if moved or resized:
            self._roi = want

    def _finish(self, raw: np.ndarray, t: float) -> TrackedFace:
        aspect = self.options.pixel_aspect
        raw_tf = self.aligner.estimate(raw, aspect)
        if not self._transform_filter.primed:
            self._ref_scale = raw_tf.scale
        ref = self._ref_scale
        # Position in face-size units and log-scale, so one set of filter parameters fits every resolution.
        v = np.array([raw_tf.cx / ref, raw_tf.cy / ref, np.log(raw_tf.scale), raw_tf.angle])
        s = self._transform_filter(v, t)
        tf = Similarity(float(s[0] * ref), float(s[1] * ref), float(np.exp(s[2])), float(s[3]), aspect)
        points = raw
        if self.options.smooth_landmarks:
            unit = np.concatenate([self.aligner.to_crop(raw, tf), raw[:, 2:3] / tf.scale], axis=1)
            unit = self._landmark_filter(unit, t)
            points = np.concatenate([self.aligner.to_frame(unit[:, :2], tf), (unit[:, 2:3] * tf.scale)], axis=1).astype(
                np.float32
            )
        on_screen = points if aspect == 1.0 else points * np.array([aspect, 1.0, 1.0], np.float32)
        return TrackedFace(
            points=points, raw_points=raw, transform=tf, angles=head_angles(on_screen), box=_box_of(points)
        )
