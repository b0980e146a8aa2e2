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

_LAZY = {
    "DubbingPipeline": "dubber.pipeline.dubbing",
    "DubOptions": "dubber.pipeline.options",
    "DubResult": "dubber.pipeline.options",
}


def __getattr__(name: str):
    # The pipeline pulls in torch and diffusers: import it on first use, not with the package.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dubber' has no attribute {name!r}")


__all__ = [
    "DubOptions",
    "DubResult",
    "DubbingPipeline",
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
