"""The landmark completer's reference landmark sets per person. The completer reads a speaker's mouth from reference
landmark sets (their lips' shape, their range: IP_LAP); in a video cut between two people, a frame of one planned
from the other's references takes on the other's lips. So each person told apart (``dubber.face.identities``) gets
sets of their own, and each source frame's plan reads its own person's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PersonReferences:
    """``sets`` (K, R, 131, 2): one reference set per person, the person seen longest first; ``of_frame`` (N,) the
    set each source frame's plan reads."""

    sets: np.ndarray
    of_frame: np.ndarray

    @property
    def main(self) -> np.ndarray:
        """(R, 131, 2) the set of the person seen longest."""
        return self.sets[0]


LandmarkReferences = np.ndarray | PersonReferences  # one set for every frame, or one per person


def main_set(references: LandmarkReferences) -> np.ndarray:
    """(R, 131, 2) the references of the person seen longest (the only set, where there is one)."""
    return references.main if isinstance(references, PersonReferences) else references


def people_in(references: LandmarkReferences) -> int:
    """The reference sets: one per person, or one for every frame."""
    return len(references.sets) if isinstance(references, PersonReferences) else 1


def sets_of_frames(references: LandmarkReferences, source_frames: np.ndarray) -> np.ndarray | None:
    """(n,) the set each of ``source_frames`` reads; None where there is one set for all."""
    return references.of_frame[source_frames] if isinstance(references, PersonReferences) else None
