"""The compositor's crop and paste on a frame kept as decoded planes (``YuvImage``): the crop warps the planes
(``Compositor.crop_planes``); the paste works on the RGB of the one region it writes, given to the compositor as if
it were the frame, the face's transform moved with it. An RGB frame is passed through as it is."""

from __future__ import annotations

import numpy as np

from dubber.face.aligner import Similarity
from dubber.media.yuv_image import YuvImage, changed_pixels, even_box
from dubber.pipeline.compositor import Compositor, ReferenceDetail


def crop_face(compositor: Compositor, frame: np.ndarray | YuvImage, transform: Similarity) -> np.ndarray:
    """``compositor.crop(frame, transform)``, or its ``crop_planes`` for a frame kept as planes."""
    if isinstance(frame, YuvImage):
        return compositor.crop_planes(frame, transform)
    return compositor.crop(frame, transform)


def paste_face(
    compositor: Compositor,
    frame: np.ndarray | YuvImage,
    rendered: np.ndarray,
    original: np.ndarray,
    transform: Similarity,
    reference: ReferenceDetail | None = None,
    jaws: np.ndarray | None = None,
) -> None:
    """``compositor.paste`` in place: for planes, on the RGB of the pasted region, written back where it changed
    (the rest of the frame keeps its decoded values exactly)."""
    if not isinstance(frame, YuvImage):
        compositor.paste(frame, rendered, original, transform, reference, jaws)
        return
    x0, y0, x1, y1 = compositor.region(transform, frame.shape)
    if x1 <= x0 or y1 <= y0:
        return
    box = even_box((x0, y0, x1, y1), frame.shape)
    before = frame.rgb(box)
    rgb = before.copy()
    compositor.paste(rgb, rendered, original, transform.in_region(box[0], box[1]), reference, jaws)
    frame.put_rgb(box, rgb, changed_pixels(rgb, before))
