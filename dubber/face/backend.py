"""The small interface every face backend implements, so the tracker does not care which one runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """A detected face in pixel coordinates of the image it was found in."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return 0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1)


class FaceBackend(ABC):
    """Finds faces in a whole frame and dense landmarks in a face-centred crop.

    ``landmarks`` is called on successive crops of one video that keep the face roughly in place, so a backend may
    track between calls; ``reset`` tells it the next crop is unrelated (new face, scene cut).
    """

    name: str = "backend"
    num_points: int = 478
    # The tracker's first ROI side over a detected box's side; None: its default for BlazeFace's tight boxes (brows
    # to mouth). A backend whose boxes run forehead to chin gives a smaller factor.
    roi_per_box: float | None = None

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """All faces in an RGB uint8 image, any order."""

    @abstractmethod
    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(num_points, 3) float32 (x, y in pixels of ``image``; z in the same units) of the main face, or None."""

    def reset(self) -> None:  # noqa: B027 - optional hook: stateless backends have nothing to forget
        """Forget tracking state."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources."""

    def __enter__(self) -> FaceBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
