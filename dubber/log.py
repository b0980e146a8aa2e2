"""The library logger: no handlers here; the CLI decides where logs go (stderr) and how verbose they are."""

from __future__ import annotations

import logging

_ROOT = "dubber"


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the ``dubber`` logger or one of its children (``dubber.<name>``)."""
    return logging.getLogger(_ROOT if not name else f"{_ROOT}.{name.removeprefix(_ROOT + '.')}")
