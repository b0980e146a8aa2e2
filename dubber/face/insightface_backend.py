"""insightface's SCRFD detector (through onnxruntime) for finding faces, MediaPipe FaceMesh for the 478 points.

The completer and the renderer read MediaPipe's mesh points (lips, jaw, pose), which no insightface model gives
(its 106- and 68-point models lack the inner lips and the mesh's pose points), so the mesh still draws the
landmarks; SCRFD decides where the face is when the tracker (re)acquires it: it finds small, turned and partly hidden
faces that BlazeFace misses. insightface downloads its model packs from the internet on first use; dubber never
does: it reads them from a folder the user names (``--face-models DIR`` or ``DUB_FACE_MODELS``), e.g. the
``buffalo_l`` pack's ``det_10g.onnx``. insightface's pretrained models are for non-commercial research use only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dubber.errors import FaceBackendError
from dubber.face.backend import FaceBackend, FaceBox

MODELS_ENV = "DUB_FACE_MODELS"
WHERE = (
    "a folder with an SCRFD detector, such as det_10g.onnx from insightface's buffalo_l pack "
    "(https://github.com/deepinsight/insightface/tree/master/python-package, non-commercial research use only)"
)


def _import_model_zoo():
    try:
        from insightface.model_zoo import get_model
    except ImportError as exc:
        raise FaceBackendError(
            "the insightface face backend needs insightface and onnxruntime (pip install 'dubber[onnx]' and "
            f"pip install --no-deps insightface): {exc}"
        ) from None
    return get_model


def detector_files(models: str | Path | None) -> list[Path]:
    """The candidate detector graphs: ``models`` (an .onnx file or a folder), else ``DUB_FACE_MODELS``; detector-like
    names (det_*, *scrfd*) first."""
    where = models or os.environ.get(MODELS_ENV)
    if not where:
        raise FaceBackendError(f"the insightface backend needs --face-models DIR (or {MODELS_ENV}): {WHERE}")
    path = Path(where)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FaceBackendError(f"{path}: no such file or folder (--face-models: {WHERE})")
    files = sorted(path.glob("*.onnx"), key=lambda p: (not (p.name.startswith("det") or "scrfd" in p.name), p.name))
    if not files:
        raise FaceBackendError(f"{path}: no .onnx files (--face-models: {WHERE})")
    return files


class InsightFaceBackend(FaceBackend):
    name = "insightface"
    num_points = 478
    roi_per_box = 1.6  # SCRFD's boxes run forehead to chin, as the landmarks' box does (TrackerOptions)

    def __init__(
        self,
        models: str | Path | None = None,
        *,
        det_size: int = 640,
        det_thresh: float = 0.5,
        providers: list[str] | None = None,
        mesh: FaceBackend | None = None,
    ) -> None:
        get_model = _import_model_zoo()
        self.detector = None
        for path in detector_files(models):
            try:
                model = get_model(str(path), providers=providers or ["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - insightface raises what onnxruntime raises on a foreign graph
                continue
            if getattr(model, "taskname", None) == "detection":
                self.detector, self.detector_path = model, path
                break
        if self.detector is None:
            raise FaceBackendError(f"{models or os.environ.get(MODELS_ENV)}: no SCRFD detector among its .onnx files")
        self.detector.prepare(ctx_id=-1, input_size=(det_size, det_size), det_thresh=det_thresh)
        self.det_size = det_size
        if mesh is None:
            from dubber.face.mediapipe_backend import MediaPipeBackend

            mesh = MediaPipeBackend()
        self.mesh = mesh

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # insightface's models read BGR
        boxes = self._detect(bgr)
        if not len(boxes):
            # A face filling a small frame grows past SCRFD's largest anchors once the frame is scaled to the
            # detector's input: look again with the frame in a canvas twice its size (boxes keep their coordinates).
            h, w = bgr.shape[:2]
            canvas = np.zeros((2 * h, 2 * w, 3), np.uint8)
            canvas[:h, :w] = bgr
            boxes = self._detect(canvas)
        return [FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(b[4])) for b in boxes]

    def _detect(self, bgr: np.ndarray) -> np.ndarray:
        boxes, _ = self.detector.detect(bgr, input_size=(self.det_size, self.det_size))
        return boxes

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        return self.mesh.landmarks(image)

    def reset(self) -> None:
        self.mesh.reset()

    def close(self) -> None:
        self.mesh.close()
