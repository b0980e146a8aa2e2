"""Opening media files with PyAV, turning its many failure modes into one-line typed errors."""

from __future__ import annotations

import os
from pathlib import Path

import av

from dubber.errors import MediaOpenError


def check_readable_file(path: str | Path) -> Path:
    """Fail early, with a clear message, on paths PyAV would report cryptically."""
    p = Path(path)
    if not p.exists():
        raise MediaOpenError(p, "no such file")
    if p.is_dir():
        raise MediaOpenError(p, "is a folder, not a media file")
    if not os.access(p, os.R_OK):
        raise MediaOpenError(p, "permission denied")
    if p.stat().st_size == 0:
        raise MediaOpenError(p, "file is empty")
    return p


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading; every failure becomes a :class:`MediaOpenError` naming the file."""
    p = check_readable_file(path)
    try:
        return av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise MediaOpenError(p, "not a media file, or its data is corrupt") from None
    except av.error.FFmpegError as exc:
        raise MediaOpenError(p, f"cannot open: {exc.strerror or exc}") from None
    except OSError as exc:
        raise MediaOpenError(p, f"cannot open: {exc.strerror or exc}") from None


def main_video_stream(container: av.container.InputContainer):
    """The picture a player shows: FFmpeg's best video stream (``av_find_best_stream``: a stream of many frames over
    a one-frame thumbnail track), never a cover picture while a moving one exists; None without video."""
    videos = list(container.streams.video)
    if not videos:
        return None
    moving = [s for s in videos if not s.disposition & av.stream.Disposition.attached_pic] or videos
    best = container.streams.best("video")
    return best if best in moving else moving[0]


def main_audio_stream(container: av.container.InputContainer):
    """The sound a player plays: the first audio stream marked as the default, else the first; None without one."""
    audio = list(container.streams.audio)
    marked = [s for s in audio if s.disposition & av.stream.Disposition.default]
    return (marked or audio or [None])[0]


def audio_stream(container: av.container.InputContainer, index: int | None):
    """The audio stream at ``index`` in the file (None: ``main_audio_stream``), or None where there is none."""
    if index is None:
        return main_audio_stream(container)
    return next((s for s in container.streams.audio if s.index == index), None)


def sound_lead(path: str | Path, stream: int | None = None) -> float:
    """Seconds after the picture's first frame that a file's own sound (its audio stream at index ``stream``, None:
    its main one) starts, as a player presents them (< 0: the sound starts first); 0 without both, or where either's
    first frame cannot be decoded. Read from the first
    decoded frame of each (a stream's start time counts the encoder's priming samples, which the decoder drops).
    The decoder gives the sound from its first sample, so the video's own sound is read this much later (or
    earlier) to line it up with the frames."""
    starts = []
    for pick in (main_video_stream, lambda container: audio_stream(container, stream)):
        with open_input(path) as container:  # each read from the file's start (a seek loses the priming's skip)
            taken = pick(container)
            if taken is None:
                return 0.0
            try:
                frame = next(container.decode(taken), None)
            except av.error.FFmpegError:
                frame = None
            if frame is None or frame.time is None:
                return 0.0
            starts.append(float(frame.time))
    lead = starts[1] - starts[0]
    return lead if abs(lead) >= 1e-3 else 0.0
