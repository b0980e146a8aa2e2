"""The face backends by name, for options and the command line."""

from __future__ import annotations

from pathlib import Path

from dubber.face.backend import FaceBackend

FACE_BACKENDS = ("mediapipe", "insightface")


def make_backend(name: str, models: str | Path | None = None) -> FaceBackend:
    """``mediapipe`` (BlazeFace + FaceMesh, in the wheel) or ``insightface`` (SCRFD from ``models`` + FaceMesh)."""
    if name == "mediapipe":
        from dubber.face.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend()
    if name == "insightface":
        from dubber.face.insightface_backend import InsightFaceBackend

        return InsightFaceBackend(models)
    raise ValueError(f"unknown face backend {name!r}; choose from {', '.join(FACE_BACKENDS)}")
