"""Typed errors raised by the library. Only the CLI turns them into exit codes."""

from __future__ import annotations

from pathlib import Path


class DubberError(Exception):
    """Base class of every error dubber raises on purpose (CLI exit code 1)."""


class InputError(DubberError):
    """The user gave something unusable: a missing, unreadable or unsuitable file (CLI exit code 2).

    The message is one line that names the file and the problem.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class MediaOpenError(InputError):
    """The file does not exist, cannot be read, is empty, or is not a media file."""


class NoVideoStreamError(InputError):
    """The file holds no video stream."""


class NoAudioStreamError(InputError):
    """The file holds no audio stream."""


class EmptyMediaError(InputError):
    """The stream exists but holds no frames or samples."""


class MediaDecodeError(InputError):
    """The stream could not be decoded (corrupt or truncated data)."""


class OutputError(InputError):
    """The output path cannot be written: unsupported format, exists without overwrite, bad folder."""


class MediaWriteError(DubberError):
    """Encoding or muxing failed while writing an output file."""


class WeightsError(DubberError):
    """Weights are missing, damaged or do not match their manifest; the message names the file."""


class FaceBackendError(DubberError):
    """A face backend is missing or failed to start."""
