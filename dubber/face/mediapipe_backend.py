"""MediaPipe FaceMesh (478 refined points) + BlazeFace detectors: models ship in the wheel, so it runs offline."""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from dubber.errors import FaceBackendError
from dubber.face.backend import FaceBackend, FaceBox

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"


class _ImportedOnUse(types.ModuleType):
    """Stands in for a module until one of its attributes is read; then the real module is imported (once the
    stand-in has left ``sys.modules``) and the attribute read from it."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def _pyplot_imported_on_use() -> Iterator[None]:
    """While MediaPipe is first imported, matplotlib and its pyplot are stand-ins that import themselves on first
    use: MediaPipe's solutions package imports ``drawing_utils``, which imports pyplot for one plotting function the
    dub never calls; importing them took 0.23 of the 0.35 s that importing MediaPipe took (``python -X importtime``).
    Afterwards both names leave ``sys.modules``, so any later import of matplotlib is the real one."""
    names = [n for n in ("matplotlib", "matplotlib.pyplot") if n not in sys.modules]
    if "mediapipe" in sys.modules or "matplotlib.pyplot" not in names:
        yield
        return
    stand_ins = {n: _ImportedOnUse(n) for n in names}
    if "matplotlib" in stand_ins:  # what ``import matplotlib.pyplot as plt`` reads from the package
        stand_ins["matplotlib"].pyplot = stand_ins["matplotlib.pyplot"]
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _import_mediapipe():
    # Quietens the glog part of MediaPipe's native logging; the CLI diverts the rest (see dubber.cli.output).
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        with _pyplot_imported_on_use():
            import mediapipe as mp
    except ImportError as exc:
        raise FaceBackendError(
            f"the MediaPipe face backend needs {MEDIAPIPE_REQUIREMENT} "
            f"(install it with: pip install --no-deps {MEDIAPIPE_REQUIREMENT}); import failed: {exc}"
        ) from None
    if not hasattr(mp, "solutions") or not hasattr(mp.solutions, "face_mesh"):
        raise FaceBackendError(
            f"mediapipe {getattr(mp, '__version__', '?')} has no FaceMesh solution; install {MEDIAPIPE_REQUIREMENT}"
        )
    return mp


# One NormalizedLandmark of a list on the wire when it holds x, y and z alone (FaceMesh's do): the list's field 1
# (tag 0x0a) of 15 bytes, then fields 1-3 (tags 0x0d, 0x15, 0x1d), each a little-endian float.
_LANDMARK_RECORD = np.dtype(
    [("tag", "u1"), ("size", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"), ("tz", "u1"), ("z", "<f4")]
)
_RECORD_TAGS = {"tag": 0x0A, "size": 15, "tx": 0x0D, "ty": 0x15, "tz": 0x1D}


def landmark_array(landmarks) -> np.ndarray:
    """(N, 3) float32 x, y, z of a ``NormalizedLandmarkList``: read from its wire bytes where every point holds x, y
    and z alone, else point by point. The same values; 0.02 against 0.23 ms for FaceMesh's 478 points, on the
    tracker's thread, which must not hold the GIL longer than it has to (pass 1's decoding and keeping threads
    wait for it)."""
    raw = landmarks.SerializeToString()
    if raw and len(raw) % _LANDMARK_RECORD.itemsize == 0:
        records = np.frombuffer(raw, _LANDMARK_RECORD)
        if all((records[name] == value).all() for name, value in _RECORD_TAGS.items()):
            return np.stack([records["x"], records["y"], records["z"]], axis=1)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32).reshape(-1, 3)


class MediaPipeBackend(FaceBackend):
    """FaceMesh in tracking mode for landmarks; short-range then full-range BlazeFace for detection.

    The short-range detector is fast and right for close-ups; the full-range one runs only when it finds nothing,
    to catch small faces in wide shots.
    """

    name = "mediapipe"
    num_points = 478

    def __init__(
        self, *, static: bool = False, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5
    ) -> None:
        """``static=True`` runs detection on every call (still images, or a per-frame baseline)."""
        mp = _import_mediapipe()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._near = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_detection_confidence
        )
        self._far = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence
        )

    @staticmethod
    def _boxes(result, width: int, height: int) -> list[FaceBox]:
        boxes = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            x0, y0 = rb.xmin * width, rb.ymin * height
            boxes.append(FaceBox(x0, y0, x0 + rb.width * width, y0 + rb.height * height, float(det.score[0])))
        return boxes

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        boxes = self._boxes(self._near.process(image), w, h)
        return boxes or self._boxes(self._far.process(image), w, h)

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        pts = landmark_array(result.multi_face_landmarks[0])
        pts[:, 0] *= w
        pts[:, 1] *= h
        pts[:, 2] *= w  # MediaPipe's z uses the same scale as x
        return pts

    def reset(self) -> None:
        self._mesh.reset()

    def close(self) -> None:
        for sol in (self._mesh, self._near, self._far):
            sol.close()
