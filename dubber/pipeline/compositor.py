"""Paste a rendered lower face back into its frame without a seam (docs/ARCHITECTURE.md §7).

All blending is decided in crop space, where the region is fixed (``LOWER_FACE_POLYGON``):
- the alpha is the polygon eroded and feathered *inside* itself, so every pixel outside the polygon keeps its
  decoded value exactly;
- colour matching: the renderer's small colour and brightness drift is measured along a thin band just inside the
  border (skin in the rendered and in the original crop) and removed with a smooth correction field (a normalised
  convolution of that band's differences), so the redrawn skin meets the original skin at the border;
- source detail: on a face larger than the crop, the frame's own detail finer than a crop pixel is added back where
  the drawing agrees with the frame at the crop's resolution (``Compositor.with_source_detail``).
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
    # Source detail: where the upscaled drawing agrees with the frame at the crop's resolution, the frame's own finer
    # detail is added back; agreement falls as exp(-difference / detail), the difference in levels of 255 of the two
    # images blurred to the crop's pixel size. 0: off. Only where a crop pixel spans more than 1.2 frame pixels.
    detail: float = 15.0


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

    def with_source_detail(self, image: np.ndarray, roi: np.ndarray, frame_per_crop: float) -> np.ndarray:
        """``image`` (the drawing warped into the frame region ``roi``, float32) plus the frame's detail finer than a
        crop pixel where the two agree at the crop's resolution: skin, stubble and lip texture the 128 px drawing
        cannot hold; not where the mouth changed (there they disagree)."""
        if frame_per_crop <= 1.2:
            return image
        source = roi.astype(np.float32)
        coarse_source = cv2.GaussianBlur(source, (0, 0), sigmaX=frame_per_crop)
        coarse_image = cv2.GaussianBlur(image, (0, 0), sigmaX=frame_per_crop)
        agree = np.exp(-np.abs(coarse_image - coarse_source).mean(-1, keepdims=True) / self.options.detail)
        return image + agree * (source - coarse_source)

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
        if self.options.detail > 0:
            image = self.with_source_detail(image, roi, transform.scale / self.size)
        blended = roi.astype(np.float32) * (1.0 - alpha) + image * alpha
        np.copyto(roi, np.clip(np.rint(blended), 0, 255).astype(np.uint8), where=alpha > 0)
