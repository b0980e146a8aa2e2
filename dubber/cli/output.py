"""Where the CLI writes: logs and progress to stderr (rich), the machine-readable result to stdout."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

stderr = Console(stderr=True, highlight=False)


class PlainStderrHandler(logging.Handler):
    """One unpadded, unwrapped line per record (``WARNING: ...``) for a stderr that is a file or a pipe, where
    rich's columns would pad and wrap at 80. Writes to whatever ``sys.stderr`` is at the time."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbosity: int) -> None:
    """-q: errors only; default: warnings; -v: info; -vv: debug (with tracebacks). rich's layout on a terminal,
    plain lines otherwise."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("dubber")
    handler = (
        RichHandler(console=stderr, show_path=False, show_time=False) if stderr.is_terminal else PlainStderrHandler()
    )
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def is_quiet() -> bool:
    """Whether -q asked for errors only (progress bars and summaries stay off)."""
    return logging.getLogger("dubber").level >= logging.ERROR


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def frame_progress(description: str, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not enabled,
        transient=True,
    )


@contextmanager
def native_stderr_diverted(enabled: bool) -> Iterator[None]:
    """Send what native libraries write to file descriptor 2 to /dev/null while Python's stderr keeps working.

    MediaPipe's C++ graphs (absl, TFLite) print start-up warnings straight to fd 2 from their own threads, which
    no logging setting reaches. The CLI owns the process, so for the length of a command Python's ``sys.stderr``
    gets a private duplicate of the real stderr and fd 2 points at /dev/null. ``-vv`` or ``DUBBER_NATIVE_LOGS=1``
    keep the native logs.
    """
    if not enabled or os.environ.get("DUBBER_NATIVE_LOGS"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded, closed): nothing to divert
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    previous = sys.stderr
    sys.stderr = io.TextIOWrapper(
        os.fdopen(os.dup(saved), "wb", buffering=0),
        write_through=True,
        encoding=getattr(previous, "encoding", None) or "utf-8",
        errors="replace",
    )
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        sys.stderr.close()
        sys.stderr = previous
        os.close(saved)
        os.close(devnull)
