"""Paste a rendered lower face back into its frame without a seam (docs/ARCHITECTURE.md §7).

All blending is decided in crop space, where the region is fixed (``LOWER_FACE_POLYGON``):
- the alpha is the polygon eroded and feathered *inside* itself, so every pixel outside the polygon keeps its
  decoded value exactly, and cut off below the source's and the drawn jaw (``Compositor.jaw_alpha``). Its soft
  edge is narrow where the region's top runs above the mouth (``LIP_ZONE``), so that the whole upper lip is drawn,
  and wide elsewhere, where a narrow one leaves a visible edge across the cheeks of a large face;
- colour matching: the renderer's small colour and brightness drift is measured along a thin band just inside the
  border (skin in the rendered and in the original crop) and removed with a smooth correction field (a normalised
  convolution of that band's differences), so the redrawn skin meets the original skin at the border;
- source detail: on a face larger than the crop, the frame's own detail finer than a crop pixel is added back where
  the drawing agrees with the frame at the crop's resolution, and where the mouth changed the hinting reference
  frame's, carried onto the target's landmarks (``Compositor.with_source_detail``, ``ReferenceDetail``).
The corrected crop and its alpha are warped back (inverse similarity) over the face's bounding box only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dubber.face.aligner import Similarity, apply_affine, invert_affine
from dubber.face.warp import warp_to_square
from dubber.media.yuv_image import YuvImage
from dubber.render.face_mask import LOWER_FACE_POLYGON, lower_face_mask


@dataclass(frozen=True)
class ReferenceDetail:
    """A reference frame's detail for one drawn frame: the hint's frame at the face's resolution, and where each
    pixel of the crop drawn on the target's landmarks reads it (the hint warp's spline, dubber/render/hint_warp.py)."""

    image: np.ndarray  # (D, D, 3) uint8, the same square as the S x S crop
    read: np.ndarray  # (s, s, 2) float32 unit crop coordinates, at the pixel centres of an s x s grid

    def in_region(self, transform: Similarity, x0: int, y0: int, size: tuple[int, int]) -> np.ndarray:
        """(h, w, 3) float32: the reference carried onto the target's landmarks, in the frame region at (x0, y0)
        of ``size``: one resampling of the detail crop (the spline's read map is smooth: interpolated)."""
        m = transform.to_matrix(1)  # frame -> unit crop
        xs = np.arange(x0, x0 + size[0], dtype=np.float32)
        ys = np.arange(y0, y0 + size[1], dtype=np.float32)[:, None]
        s = self.read.shape[0]
        ux = ((m[0, 0] * xs + m[0, 1] * ys + m[0, 2]) * s).astype(np.float32)
        uy = ((m[1, 0] * xs + m[1, 1] * ys + m[1, 2]) * s).astype(np.float32)
        read = cv2.remap(self.read, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) * self.image.shape[0]
        image = cv2.remap(self.image, read[..., 0], read[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        return image.astype(np.float32)


# Unit-crop box (x0, x1, y1) over the mouth where the alpha's soft edge is ``lip_feather``: the region's top edge
# (y 0.49-0.515) runs just above the upper lip there (y 0.52-0.57, or 0.57 and lower once the crop is moved,
# dubber/pipeline/render_shift.py); mouth corners lie at x 0.35-0.65 in the aligned crop. Feathered by ``_ZONE_SOFT``.
LIP_ZONE = (0.32, 0.68, 0.72)
_ZONE_SOFT = 0.03


@dataclass(frozen=True)
class CompositeOptions:
    feather: float = 1 / 24  # width of the soft edge, as a fraction of the crop side
    lip_feather: float = 1 / 96  # ... above the mouth (``LIP_ZONE``): full about 5 crop pixels inside the edge
    colour_band: float = 1 / 24  # width of the band that measures the colour drift
    colour_sigma: float = 1 / 8  # smoothness of the correction field
    colour_match: bool = True
    jaw_margin: float = 1 / 32  # kept drawn below the lower of the two jaws (source, target), a fraction of the side
    # Source detail: where the upscaled drawing agrees with the frame at the crop's resolution, the frame's own finer
    # detail is added back; agreement falls as exp(-difference / detail), the difference in levels of 255 of the two
    # images blurred to the crop's pixel size. 0: off. Only where a crop pixel spans more than 1.2 frame pixels.
    detail: float = 15.0
    # The reference's detail (``Compositor.with_source_detail``): none on faces of up to ``reference_from`` frame
    # pixels per crop pixel, all of it from ``reference_full``; its finest band only, below a Gaussian of
    # ``reference_band`` crop pixels.
    reference_from: float = 2.0
    reference_full: float = 4.0
    reference_band: float = 0.7


def _mix_gain(wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """The factor that rescales ``a + b`` (two textures already weighted by ``wa`` and ``wb``) so that where both
    count the mix is as strong as either texture at weight ``wa + wb``: a plain weighted sum of two unrelated textures
    is weaker than either (at half and half, 0.71 of one), which reads as blur (variance-preserving blending, as in
    texture synthesis)."""
    return (wa + wb) / np.sqrt(wa * wa + wb * wb + 1e-12)


def _agreement(a: np.ndarray, b: np.ndarray, detail: float) -> np.ndarray:
    """(h, w, 1) float32: exp(-(mean over channels of |a - b|) / detail) of two (h, w, 3) float32 images (OpenCV's
    single passes: numpy's channel mean and temporaries cost several times as much on a large face's region)."""
    scaled = cv2.transform(cv2.absdiff(a, b), np.full((1, 3), -1.0 / (3.0 * detail), np.float32))
    return cv2.exp(scaled)[..., None]


def _odd(n: float) -> int:
    k = max(1, int(round(n)))
    return k + 1 - k % 2


def _soft_region(hard: np.ndarray, feather: float) -> np.ndarray:
    """The region ``hard`` (S, S) eroded and feathered over ``feather`` crop pixels, inside itself."""
    f = max(1.0, feather)
    # Zero for 2 crop pixels inside the border, so that interpolating the alpha into the (usually larger) frame
    # cannot leak past the polygon; the soft edge lies inside that margin.
    margin = cv2.erode(hard, np.ones((5, 5), np.uint8))
    inner = cv2.erode(hard, np.ones((_odd(2 * f + 5), _odd(2 * f + 5)), np.uint8))
    return (cv2.GaussianBlur(inner, (0, 0), sigmaX=f / 2) * margin).astype(np.float32)


def _lip_zone(size: int) -> np.ndarray:
    """(size, size) float32: 1 over ``LIP_ZONE``, 0 away from it, a soft step between."""
    x0, x1, y1 = (round(v * size) for v in LIP_ZONE)
    zone = np.zeros((size, size), np.float32)
    zone[:y1, x0:x1] = 1.0
    return cv2.GaussianBlur(zone, (0, 0), sigmaX=_ZONE_SOFT * size)


class Compositor:
    def __init__(self, size: int, options: CompositeOptions | None = None) -> None:
        self.size = size
        self.options = o = options or CompositeOptions()
        hard = lower_face_mask(size)
        zone = _lip_zone(size)
        lips, elsewhere = _soft_region(hard, o.lip_feather * size), _soft_region(hard, o.feather * size)
        self.alpha = zone * lips + (1 - zone) * elsewhere
        b = max(1.0, o.colour_band * size)
        self.band = (hard - cv2.erode(hard, np.ones((_odd(2 * b), _odd(2 * b)), np.uint8))).astype(np.float32)
        self._band_weight = self._smooth(self.band)

    def _smooth(self, image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=self.options.colour_sigma * self.size)

    def jaw_alpha(self, jaws: np.ndarray) -> np.ndarray:
        """The paste's alpha cut off below the jaw: (K, 17, 2) unit-crop jaw contours, ear to ear (the source frame's
        and the drawn one's); the region above any of them, widened by ``jaw_margin``, stays drawn. Below both jaws
        lie neck, collar and background, which the drawing can only get wrong (a reference's collar from another
        pose, carried in by the hint)."""
        s = self.size
        mask = np.zeros((s, s), np.uint8)
        for jaw in jaws * s:
            poly = np.concatenate([jaw, [[jaw[-1, 0], 0.0], [jaw[0, 0], 0.0]]])
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        m = max(1, int(round(self.options.jaw_margin * s)))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * m + 1, 2 * m + 1)))
        f = max(1.0, self.options.feather * s)
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=f / 2)
        soft[soft < 1e-3] = 0.0  # the Gaussian's far tail: those pixels stay exactly the frame's
        return self.alpha * soft

    def colour_matched(self, rendered: np.ndarray, original: np.ndarray) -> np.ndarray:
        """``rendered`` (S, S, 3) uint8 shifted so its skin along the border matches ``original``'s."""
        out = rendered.astype(np.float32)
        if not self.options.colour_match:
            return out
        diff = (original.astype(np.float32) - out) * self.band[..., None]
        field = self._smooth(diff) / np.maximum(self._band_weight, 1e-4)[..., None]
        return out + field

    def with_source_detail(
        self,
        image: np.ndarray,
        roi: np.ndarray,
        frame_per_crop: float,
        reference: np.ndarray | None = None,
    ) -> np.ndarray:
        """``image`` (the drawing warped into the frame region ``roi``, float32) plus the frame's detail finer than a
        crop pixel where the two agree at the crop's resolution: skin, stubble and lip texture the 128 px drawing
        cannot hold; not where the mouth changed (there they disagree).

        Where they disagree, ``reference`` (the hint's frame at the face's resolution carried onto the target's
        landmarks, in ``roi``) gives its detail instead, where the drawing agrees with it: the changed lips and teeth
        from a frame that shows them. On faces of up to ``reference_from`` frame pixels per crop pixel the drawing
        holds nearly all the detail there is (a reference's would double it), from ``reference_full`` on all of it.
        The two details are mixed so that the mix keeps one texture's strength (``_mix_gain``)."""
        if frame_per_crop <= 1.2:
            return image
        o = self.options
        source = roi if roi.dtype == np.float32 else roi.astype(np.float32)
        coarse_source = cv2.GaussianBlur(source, (0, 0), sigmaX=frame_per_crop)
        coarse_image = cv2.GaussianBlur(image, (0, 0), sigmaX=frame_per_crop)
        agree = _agreement(coarse_image, coarse_source, o.detail)
        own = cv2.subtract(source, coarse_source)  # the frame's detail finer than a crop pixel
        ramp = (frame_per_crop - o.reference_from) / (o.reference_full - o.reference_from)
        if reference is None or ramp <= 0:
            own *= agree
            own += image
            return own
        coarse_ref = cv2.GaussianBlur(reference, (0, 0), sigmaX=frame_per_crop)
        weight = (1.0 - agree) * _agreement(coarse_image, coarse_ref, o.detail) * min(ramp, 1.0)
        # Only the reference's finest detail: its coarser detail is the drawing's to give.
        fine = cv2.subtract(reference, cv2.GaussianBlur(reference, (0, 0), sigmaX=o.reference_band * frame_per_crop))
        gain = _mix_gain(agree, weight)
        own *= agree * gain
        fine *= weight * gain
        own += fine
        own += image
        return own

    def crop(self, frame: np.ndarray, transform: Similarity) -> np.ndarray:
        """The S x S crop of ``frame`` the renderer redraws (``FaceAligner.crop``): the other direction of the
        pixel work, here so that a GPU compositor does both."""
        return warp_to_square(frame, transform.to_matrix(self.size), self.size)

    def crop_planes(self, frame: YuvImage, transform: Similarity) -> np.ndarray:
        """``crop`` of a frame kept as planes: each plane warped (the chroma planes at their half resolution, a
        sample at the centre of its 2 x 2 pixels, where the frame's RGB repeats it), then made RGB at the crop's
        size. It differs from the crop of the frame's RGB by the chroma's smoother resampling (a few levels at
        colour edges), for a fraction of converting the face's region."""
        m = transform.to_matrix(self.size)
        y, u, v = frame.planes()
        chroma = m @ np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1.0]])  # chroma sample -> crop pixel
        return frame.rgb_of(
            warp_to_square(y, m, self.size), warp_to_square(u, chroma, self.size), warp_to_square(v, chroma, self.size)
        )

    def region(self, transform: Similarity, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in the frame holding the polygon (clipped; empty when it lies outside)."""
        h, w = frame_shape[:2]
        corners = apply_affine(invert_affine(transform.to_matrix(1)), LOWER_FACE_POLYGON)
        x0, y0 = np.floor(corners.min(0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 3
        return max(0, x0), max(0, y0), min(w, x1), min(h, y1)

    def paste(
        self,
        frame: np.ndarray,
        rendered: np.ndarray,
        original: np.ndarray,
        transform: Similarity,
        reference: ReferenceDetail | None = None,
        jaws: np.ndarray | None = None,
    ) -> None:
        """Blend ``rendered`` into ``frame`` in place; ``original`` is the crop the renderer was given; ``reference``
        the hint's detail (``with_source_detail``)."""
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
        alpha = self.alpha if jaws is None else self.jaw_alpha(jaws)
        alpha = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)[..., None]
        roi = frame[y0:y1, x0:x1]
        source = roi.astype(np.float32)
        if self.options.detail > 0:
            frame_per_crop = transform.scale / self.size
            ref = None
            if reference is not None and frame_per_crop > self.options.reference_from:
                ref = reference.in_region(transform, x0, y0, size)
            image = self.with_source_detail(image, source, frame_per_crop, ref)
        # roi + (image - roi) * alpha in place: where alpha is 0 that is the decoded value exactly.
        image -= source
        image *= alpha
        image += source
        np.rint(image, out=image)
        np.clip(image, 0, 255, out=image)
        np.copyto(roi, image, casting="unsafe")
