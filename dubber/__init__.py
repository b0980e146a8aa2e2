"""dubber: video dubbing (lip-sync) on landmarks and a diffusion renderer.

Heavy modules (torch, mediapipe, PyAV) are imported lazily so that ``dub --help`` stays fast.
"""

from __future__ import annotations

from dubber.errors import (
    DubberError,
    EmptyMediaError,
    FaceBackendError,
    InputError,
    MediaDecodeError,
    MediaOpenError,
    MediaWriteError,
    NoAudioStreamError,
    NoVideoStreamError,
    OutputError,
)

__version__ = "0.1.0"

__all__ = [
    "DubberError",
    "EmptyMediaError",
    "FaceBackendError",
    "InputError",
    "MediaDecodeError",
    "MediaOpenError",
    "MediaWriteError",
    "NoAudioStreamError",
    "NoVideoStreamError",
    "OutputError",
    "__version__",
]
