"""Paste a rendered lower face back into its frame without a seam (docs/ARCHITECTURE.md §7).

All blending is decided in crop space, where the region is fixed (``LOWER_FACE_POLYGON``):
- the alpha is the polygon eroded and feathered *inside* itself, so every pixel outside the polygon keeps its
  decoded value exactly;
- colour matching: the renderer's small colour and brightness drift is measured along a thin band just inside the
  border (skin in the rendered and in the original crop) and removed with a smooth correction field (a normalised
  convolution of that band's differences), so the redrawn skin meets the original skin at the border.
The corrected crop and its alpha are warped back (inverse similarity) over the face's bounding box only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dubber.face.aligner import Similarity, apply_affine, invert_affine
from dubber.render.face_mask import LOWER_FACE_POLYGON, lower_face_mask


@dataclass(frozen=True)
class CompositeOptions:
    feather: float = 1 / 24  # width of the soft edge, as a fraction of the crop side
    colour_band: float = 1 / 24  # width of the band that measures the colour drift
    colour_sigma: float = 1 / 8  # smoothness of the correction field
    colour_match: bool = True


def _odd(n: float) -> int:
    k = max(1, int(round(n)))
    return k + 1 - k % 2


class Compositor:
    def __init__(self, size: int, options: CompositeOptions | None = None) -> None:
        self.size = size
        self.options = o = options or CompositeOptions()
        hard = lower_face_mask(size)
        f = max(1.0, o.feather * size)
        # Zero for 2 crop pixels inside the border, so that interpolating the alpha into the (usually larger) frame
        # cannot leak past the polygon; the soft edge lies inside that margin.
        margin = cv2.erode(hard, np.ones((5, 5), np.uint8))
        inner = cv2.erode(hard, np.ones((_odd(2 * f + 5), _odd(2 * f + 5)), np.uint8))
        soft = cv2.GaussianBlur(inner, (0, 0), sigmaX=f / 2)
        self.alpha = (soft * margin).astype(np.float32)
        b = max(1.0, o.colour_band * size)
        self.band = (hard - cv2.erode(hard, np.ones((_odd(2 * b), _odd(2 * b)), np.uint8))).astype(np.float32)
        self._band_weight = self._smooth(self.band)

    def _smooth(self, image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=self.options.colour_sigma * self.size)

    def colour_matched(self, rendered: np.ndarray, original: np.ndarray) -> np.ndarray:
        """``rendered`` (S, S, 3) uint8 shifted so its skin along the border matches ``original``'s."""
        out = rendered.astype(np.float32)
        if not self.options.colour_match:
            return out
        diff = (original.astype(np.float32) - out) * self.band[..., None]
        field = self._smooth(diff) / np.maximum(self._band_weight, 1e-4)[..., None]
        return out + field

    def region(self, transform: Similarity, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in the frame holding the polygon (clipped; empty when it lies outside)."""
        h, w = frame_shape[:2]
        corners = apply_affine(invert_affine(transform.to_matrix(1)), LOWER_FACE_POLYGON)
        x0, y0 = np.floor(corners.min(0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 3
        return max(0, x0), max(0, y0), min(w, x1), min(h, y1)

    def paste(self, frame: np.ndarray, rendered: np.ndarray, original: np.ndarray, transform: Similarity) -> None:
        """Blend ``rendered`` into ``frame`` in place; ``original`` is the crop the renderer was given."""
        x0, y0, x1, y1 = self.region(transform, frame.shape)
        if x1 <= x0 or y1 <= y0:
            return
        crop = self.colour_matched(rendered, original)
        # Frame -> crop matrix of this region: warping with WARP_INVERSE_MAP pulls crop pixels into it.
        m = transform.to_matrix(self.size) @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])
        size = (x1 - x0, y1 - y0)
        image = cv2.warpAffine(
            crop, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
        alpha = cv2.warpAffine(self.alpha, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)[..., None]
        roi = frame[y0:y1, x0:x1]
        blended = roi.astype(np.float32) * (1.0 - alpha) + image * alpha
        np.copyto(roi, np.clip(np.rint(blended), 0, 255).astype(np.uint8), where=alpha > 0)
