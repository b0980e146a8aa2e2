"""Faces: a backend interface (MediaPipe FaceMesh by default), a tracker over frame streams, and the aligner."""

from dubber.face.aligner import CROP_SIZES, FaceAligner, Similarity, canonical_face, fit_similarity
from dubber.face.backend import FaceBackend, FaceBox
from dubber.face.landmarks import (
    ALIGN_INDICES,
    ALL_INDICES,
    CONTENT_INDICES,
    JAW,
    LIP_INDICES,
    POSE_INDICES,
    head_angles,
    inter_ocular,
    mouth_opening,
)
from dubber.face.tracker import FaceTracker, TrackedFace, TrackerOptions, TrackStep

__all__ = [
    "ALIGN_INDICES",
    "ALL_INDICES",
    "CONTENT_INDICES",
    "CROP_SIZES",
    "JAW",
    "LIP_INDICES",
    "POSE_INDICES",
    "FaceAligner",
    "FaceBackend",
    "FaceBox",
    "FaceTracker",
    "Similarity",
    "TrackStep",
    "TrackedFace",
    "TrackerOptions",
    "canonical_face",
    "fit_similarity",
    "head_angles",
    "inter_ocular",
    "mouth_opening",
]
