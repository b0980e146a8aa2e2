"""Write outputs to a temporary file beside the destination and rename only on success."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dubber.errors import OutputError


def check_output_path(dest: str | Path, *, overwrite: bool) -> Path:
    d = Path(dest)
    if d.exists() and d.is_dir():
        raise OutputError(d, "is a folder; give a file name for the output")
    if d.exists() and not overwrite:
        raise OutputError(d, "already exists (use --overwrite to replace it)")
    if not d.parent.is_dir():
        blocker = next((p for p in [d.parent, *d.parent.parents] if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise OutputError(d, f"{blocker} is a file, not a folder")
        raise OutputError(d, f"folder {d.parent} does not exist")
    if not os.access(d.parent, os.W_OK):
        raise OutputError(d, f"folder {d.parent} is not writable")
    _try_writing_in(d)
    return d


def _try_writing_in(dest: Path) -> None:
    """Create and remove a file beside ``dest``: root passes ``os.access`` everywhere, but not every folder takes a
    file (/proc, a read-only or full mount), and a dub should say so before its work, not at its end."""
    probe = temporary_path_for(dest)
    try:
        with open(probe, "xb"):
            pass
    except OSError as e:
        raise OutputError(dest, f"folder {dest.parent} is not writable ({e.strerror or e})") from None
    probe.unlink(missing_ok=True)


def temporary_path_for(dest: Path) -> Path:
    """A unique hidden name in the same folder (same filesystem, so the final rename is atomic)."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")


@contextmanager
def atomic_output(dest: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on normal exit move it onto ``dest``, on any exception delete it."""
    d = check_output_path(dest, overwrite=overwrite)
    tmp = temporary_path_for(d)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, d)
