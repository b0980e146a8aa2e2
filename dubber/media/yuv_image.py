"""A decoded 4:2:0 frame kept as its planes, made RGB only in the region that is worked on.

The dub changes the lower face and nothing else. Converting every whole frame to RGB after decoding and back to
4:2:0 before encoding cost about 4.5 ms a 720p frame on one core (a quarter of a plain re-encode's time), and moved
every pixel of the frame by a level of 255 on average (docs/DESIGN-NOTES.md "Media"). Kept as planes, a frame goes
to the encoder as it was decoded, and only a face's region is converted, both ways with the frame's own colour
matrix and range. The conversions are OpenCV matrix passes (swscale spent most of a face region's time setting
itself up); they agree with swscale's within 3 levels of 255 (its fast path rounds more coarsely).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import av
import cv2
import numpy as np

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in frame pixels
# Luma weights (Kr, Kb) by FFmpeg's colour space number; any other (unspecified among them) is BT.601, as in swscale.
_LUMA_WEIGHTS = {1: (0.2126, 0.0722), 7: (0.212, 0.087), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
_FULL_RANGE = 2  # FFmpeg's AVCOL_RANGE_JPEG


@cache  # per frame and region on the dub's hot path; a handful of keys
def yuv_to_rgb_matrix(colorspace: int, color_range: int) -> np.ndarray:
    """(3, 4) float: RGB (0-255) = M @ (Y, U, V, 1) for 8-bit samples of ``colorspace`` and ``color_range`` (one
    read-only array per pair: it is asked for per frame)."""
    kr, kb = _LUMA_WEIGHTS.get(colorspace, (0.299, 0.114))
    kg = 1.0 - kr - kb
    if color_range == _FULL_RANGE:
        ys, cs, y0 = 1.0, 1.0, 0.0
    else:  # limited ("MPEG") range, also where unspecified
        ys, cs, y0 = 255.0 / 219.0, 255.0 / 224.0, 16.0
    # R = Y + 2 (1 - Kr) V;  B = Y + 2 (1 - Kb) U;  G = (Y - Kr R - Kb B) / Kg  (U, V centred on 128)
    rv, bu = 2 * (1 - kr) * cs, 2 * (1 - kb) * cs
    gu, gv = -kb * bu / kg, -kr * rv / kg
    m = np.array([[ys, 0.0, rv], [ys, gu, gv], [ys, bu, 0.0]])
    offset = -m @ np.array([y0, 128.0, 128.0])
    out = np.concatenate([m, offset[:, None]], axis=1)
    out.flags.writeable = False
    return out


@cache  # per frame and region on the dub's hot path; a handful of keys
def rgb_to_yuv_matrix(colorspace: int, color_range: int) -> np.ndarray:
    """(3, 4) float: the inverse of ``yuv_to_rgb_matrix``."""
    m = yuv_to_rgb_matrix(colorspace, color_range)
    inv = np.linalg.inv(m[:, :3])
    out = np.concatenate([inv, (-inv @ m[:, 3])[:, None]], axis=1)
    out.flags.writeable = False
    return out


@dataclass(eq=False)
class YuvImage:
    """An upright yuv420p frame: ``data`` (H * 3 / 2, W) uint8 holds the Y plane, then U, then V (I420, PyAV's
    packing); ``colorspace`` and ``color_range`` are the decoded frame's (FFmpeg's numbering)."""

    data: np.ndarray
    colorspace: int = 2  # unspecified: BT.601, as swscale reads it
    color_range: int = 0

    @classmethod
    def from_frame(cls, frame: av.VideoFrame, rotation: int = 0) -> YuvImage | None:
        """The planes of a decoded frame turned upright (``rotation`` degrees counter-clockwise, a multiple of 90);
        None unless it is yuv420p (or yuvj420p: full range) of even width and height."""
        if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or frame.height % 2:
            return None
        full = frame.format.name == "yuvj420p"  # the same planes, their range said by the format
        image = cls(frame.to_ndarray(), int(frame.colorspace), int(frame.color_range) or (_FULL_RANGE if full else 0))
        return image if rotation % 360 == 0 else image.rotated(rotation)

    @classmethod
    def from_planes(cls, y: np.ndarray, u: np.ndarray, v: np.ndarray, colorspace: int, color_range: int) -> YuvImage:
        h, w = y.shape
        data = np.empty((h * 3 // 2, w), np.uint8)
        flat = data.reshape(-1)
        flat[: h * w] = y.reshape(-1)
        flat[h * w : h * w * 5 // 4] = u.reshape(-1)
        flat[h * w * 5 // 4 :] = v.reshape(-1)
        return cls(data, colorspace, color_range)

    @property
    def height(self) -> int:
        return self.data.shape[0] * 2 // 3

    @property
    def width(self) -> int:
        return self.data.shape[1]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the RGB image it stands for."""
        return self.height, self.width, 3

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of Y (H, W), U and V (H / 2, W / 2)."""
        h, w = self.height, self.width
        flat = self.data.reshape(-1)
        y = flat[: h * w].reshape(h, w)
        u = flat[h * w : h * w * 5 // 4].reshape(h // 2, w // 2)
        v = flat[h * w * 5 // 4 :].reshape(h // 2, w // 2)
        return y, u, v

    def copy(self) -> YuvImage:
        return YuvImage(self.data.copy(), self.colorspace, self.color_range)

    def rotated(self, degrees: int) -> YuvImage:
        """Each plane turned ``degrees`` counter-clockwise (``np.rot90``, as the RGB frames are)."""
        k = (degrees // 90) % 4
        y, u, v = (np.rot90(p, k=k) for p in self.planes())
        return YuvImage.from_planes(y, u, v, self.colorspace, self.color_range)

    def to_frame(self) -> av.VideoFrame:
        """A PyAV frame of these planes, tagged with the source's colour matrix and range."""
        frame = av.VideoFrame.from_ndarray(self.data, format="yuv420p")
        frame.colorspace, frame.color_range = self.colorspace, self.color_range
        return frame

    def rgb_of(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 RGB of full-resolution planes (4:4:4, e.g. warped from this frame's) in this frame's
        colour matrix and range."""
        return cv2.transform(cv2.merge([y, u, v]), yuv_to_rgb_matrix(self.colorspace, self.color_range))

    def rgb(self, box: Box | None = None) -> np.ndarray:
        """(y1 - y0, x1 - x0, 3) uint8 RGB of ``box`` (even corners: ``even_box``), or of the whole frame, each
        chroma sample given to its 2 x 2 pixels (as swscale does)."""
        x0, y0, x1, y1 = box if box is not None else (0, 0, self.width, self.height)
        y, u, v = self.planes()
        size, rows, cols = (x1 - x0, y1 - y0), slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2)
        u, v = (cv2.resize(p[rows, cols], size, interpolation=cv2.INTER_NEAREST) for p in (u, v))
        return self.rgb_of(y[y0:y1, x0:x1], u, v)

    def put_rgb(self, box: Box, rgb: np.ndarray, changed: np.ndarray) -> None:
        """Write ``rgb`` (the region ``box``, even corners) back where ``changed`` (h, w) bool says; a chroma sample
        takes the mean of its 2 x 2 pixels where any of them changed. Everything else keeps its decoded value
        exactly."""
        x0, y0, x1, y1 = box
        ny, nu, nv = cv2.split(cv2.transform(rgb, rgb_to_yuv_matrix(self.colorspace, self.color_range)))
        half = ((x1 - x0) // 2, (y1 - y0) // 2)
        y, u, v = self.planes()
        np.copyto(y[y0:y1, x0:x1], ny, where=changed)
        block = changed[0::2, 0::2] | changed[1::2, 0::2] | changed[0::2, 1::2] | changed[1::2, 1::2]
        for plane, new in ((u, nu), (v, nv)):
            mean = cv2.resize(new, half, interpolation=cv2.INTER_AREA)
            np.copyto(plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], mean, where=block)


def even_box(box: Box, shape: tuple[int, ...]) -> Box:
    """``box`` grown to even corners (a whole chroma sample), within a frame of ``shape`` (even sides)."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    return x0 - x0 % 2, y0 - y0 % 2, min(w, x1 + x1 % 2), min(h, y1 + y1 % 2)


def changed_pixels(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """(h, w) bool: where two RGB images of one shape differ in any channel (OpenCV: numpy's reduction over a
    3-long last axis took 2 ms for a face's region)."""
    r, g, b = cv2.split(cv2.absdiff(after, before))
    return cv2.max(cv2.max(r, g), b) > 0
