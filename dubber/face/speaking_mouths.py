"""A photo's reference landmarks for the completer: its own face at the mouth openings a speaker goes through.

The completer was trained with reference landmark sets spread over each speaker's mouth openings (IP_LAP): they
tell it how far this speaker's lips and jaw travel. A photo shows one mouth, and 15 copies of it tell the completer the
speaker never moves: its plan then moves little, and on some faces breaks (docs/QUALITY.md "Still photos"). So a
photo gets the train split's typical lips and jaw at 15 openings, from closed to wide (the median displacement of a
speaker's lips and jaw from their most closed reference, ``speaking_mouths.npz``, fitted by
``scripts/fit_speaking_mouths.py``), added to its own, with the photo at the opening nearest its own.

An open mouth in a photo (a smile, a word caught mid-way) is placed no higher than the middle of that range: the
plan then moves about the photo's mouth rather than closing it most of the time, which the renderer, with the photo
as its only reference, follows poorly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from dubber.face.landmarks import CONTENT_INDICES, N_POSE, mouth_opening

TABLE = Path(__file__).with_name("speaking_mouths.npz")
# A train clip whose references' openings span less than this teaches no range: left out of the table.
MIN_RANGE = 0.05


@lru_cache(maxsize=1)
def speaking_mouths() -> tuple[np.ndarray, np.ndarray]:
    """(R, 57, 2) lips-and-jaw displacements from the closed mouth, and (R,) their mouth openings, closed first."""
    with np.load(TABLE) as table:
        return table["displacements"].astype(np.float32), table["openings"].astype(np.float32)


def photo_references(photo: np.ndarray, count: int) -> np.ndarray:
    """(count, 131, 2) reference landmark sets for a photo whose tracked points are ``photo`` (131, 2): its upper
    face throughout, its lips and jaw moved along the typical openings (spread over them when ``count`` is not the
    table's length)."""
    displacements, openings = speaking_mouths()
    own = float(mouth_opening(photo[None, N_POSE:], CONTENT_INDICES)[0])
    middle = int(np.argmin(np.abs(openings - (openings[0] + openings[-1]) / 2)))
    at = min(int(np.argmin(np.abs(openings - own))), middle)
    sets = np.repeat(photo[None].astype(np.float32), len(openings), 0)
    sets[:, N_POSE:] += displacements - displacements[at]
    return sets[np.round(np.linspace(0, len(openings) - 1, count)).astype(int)]
