"""The lower-face region the renderer redraws, fixed in aligned-crop coordinates.

Crops are aligned on stable upper-face points, so one region in crop coordinates covers the mouth, chin and jaw of
every frame, wide-open jaws included. A fixed region (rather than one drawn from each frame's jaw contour) leaks
nothing about the original mouth into the renderer's input, and compositing reuses the same shape.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Unit-crop polygon: from just below the nostrils, out past the cheeks at mouth height, round the open chin.
# The canonical face (dubber/face/canonical_face.npy) has the subnasale at y 0.51, mouth corners at x 0.41/0.61,
# jaw sides at x 0.24/0.77 and the closed chin at y 0.80.
LOWER_FACE_POLYGON = np.array(
    [
        (0.20, 0.50),
        (0.38, 0.49),
        (0.50, 0.515),
        (0.62, 0.49),
        (0.80, 0.50),
        (0.83, 0.66),
        (0.76, 0.85),
        (0.62, 0.96),
        (0.50, 0.99),
        (0.38, 0.96),
        (0.24, 0.85),
        (0.17, 0.66),
    ],
    dtype=np.float32,
)


@lru_cache(maxsize=8)
def lower_face_mask(size: int) -> np.ndarray:
    """(size, size) float32, 1 inside the redrawn region and 0 outside (read-only, shared)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(LOWER_FACE_POLYGON * size).astype(np.int32)], 1, lineType=cv2.LINE_8)
    out = mask.astype(np.float32)
    out.flags.writeable = False
    return out
