"""Warp a region of a frame to a small square quickly and without aliasing."""

from __future__ import annotations

import cv2
import numpy as np


def square_source(m: np.ndarray, size: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the region of an image of ``shape`` that the ``size`` x ``size`` output of the image -> output
    matrix ``m`` reads, with a margin for bicubic taps, clipped to the image."""
    inv = cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    src = corners @ inv[:, :2].T + inv[:, 2]
    h, w = shape[:2]
    x0 = int(np.clip(np.floor(src[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(src[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(src[:, 0].max()) + 3, x0 + 1, w))
    y1 = int(np.clip(np.ceil(src[:, 1].max()) + 3, y0 + 1, h))
    return x0, y0, x1, y1


def warp_to_square(image: np.ndarray, m: np.ndarray, size: int, *, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """``cv2.warpAffine(image, m, (size, size))`` that touches only the source region it needs.

    When the warp shrinks by 2x or more, that region is first reduced by the whole factor with an area filter
    (warpAffine has none, so large faces would alias); either way the full frame is never resized or copied.
    """
    m = np.asarray(m, dtype=np.float64)
    x0, y0, x1, y1 = square_source(m, size, image.shape)
    region = image[y0:y1, x0:x1]
    m = m @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])  # region pixel -> output pixel
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))  # source pixels per output pixel
    if shrink >= 2.0:  # by a whole factor: below 2 that is 1, and the reduction would only copy the region
        f = 1.0 / np.floor(shrink)
        region = cv2.resize(region, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        # Pixel centres of the reduced region back to the region's own coordinates.
        m = m @ np.array([[1 / f, 0, 0.5 / f - 0.5], [0, 1 / f, 0.5 / f - 0.5], [0, 0, 1.0]])
    return cv2.warpAffine(region, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=border)
