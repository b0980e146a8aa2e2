"""The compositor's pixel work in torch, for a dub whose models run on a GPU (docs/DUBBING.md "Speed and memory").

``Compositor`` (OpenCV, on the CPU) decides everything in crop space and then works on the face's region of the
frame: a bicubic warp of the drawing into it, Gaussian blurs of the region for the frame's and the reference's
detail, a remap of the reference frame, the blend. At 1080p that region is a few hundred pixels a side and the
blurs dominate the paste (about 9 ms a frame on one core), in the thread that also feeds the encoder. Here the same
operations run on ``device``: the region goes up as uint8 and comes back as uint8, and the crop-space parts that
are computed once or are tiny (the alpha, the jaw cut) stay the parent's.

The operations are OpenCV's own, re-expressed: the Gaussian kernels are ``cv2.getGaussianKernel`` at the size
``cv2.GaussianBlur`` picks, mirrored at the border as it does (``BORDER_REFLECT_101``); the warps sample at the
same coordinates with the same cubic (A = -0.75, borders replicated) and linear kernels. OpenCV rounds its warp
coordinates to 1/32 of a pixel, so the two agree within 4 levels of 255, 0.2-0.4 on average
(tests/test_torch_compositor.py). The crop goes the other way the same way (``TorchCompositor.crop``).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from dubber.face.aligner import Similarity
from dubber.face.warp import square_source
from dubber.media.yuv_image import YuvImage, even_box
from dubber.pipeline.compositor import CompositeOptions, Compositor, ReferenceDetail


def _reflect_101(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of 0..n-1 padded by ``pad`` on each side, mirrored without repeating the edge (any ``pad``)."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i < n, i, period - i)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)`` of a float32 (C, H, W) tensor."""
    ksize = int(round(sigma * 8 + 1)) | 1  # OpenCV's choice for floating-point images
    kernel = torch.from_numpy(cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F).ravel()).to(image.device)
    c, h, w = image.shape
    pad = ksize // 2
    x = image.index_select(2, _reflect_101(w, pad, image.device))
    x = F.conv2d(x[None], kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = x[0].index_select(1, _reflect_101(h, pad, image.device))
    return F.conv2d(x[None], kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]


def _sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """(C, h, w): ``image`` (C, H, W) read at pixel coordinates (x, y) (h, w), pixel centres at integers."""
    _, height, width = image.shape
    grid = torch.stack([x * (2 / max(width - 1, 1)) - 1, y * (2 / max(height - 1, 1)) - 1], -1)
    return F.grid_sample(image[None], grid[None], mode=mode, padding_mode=padding, align_corners=True)[0]


def _affine_coordinates(m: np.ndarray, size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Where each pixel of a (w, h) ``size`` image reads its source under the 2x3 ``m`` (destination -> source)."""
    w, h = size
    m = torch.as_tensor(m, dtype=torch.float64, device=device)
    xs = torch.arange(w, dtype=torch.float64, device=device)[None]
    ys = torch.arange(h, dtype=torch.float64, device=device)[:, None]
    x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return x.float(), y.float()


def _channels_first(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, C) array -> float32 (C, H, W) tensor on ``device`` (uint8 goes up as uint8: a quarter the bytes)."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float()


class TorchCompositor(Compositor):
    """``Compositor`` with the crop's and the paste's pixel work on ``device``; the same arguments, the same result
    within 4 levels of 255."""

    def __init__(self, size: int, options: CompositeOptions | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__(size, options)
        self.device = torch.device(device)
        self._band = torch.from_numpy(self.band).to(self.device)
        self._band_weight_t = torch.from_numpy(np.maximum(self._band_weight, 1e-4)).to(self.device)

    def crop(self, frame: np.ndarray, transform: Similarity) -> np.ndarray:
        """``Compositor.crop`` (``dubber.face.warp.warp_to_square``) on the device: the face's region goes up as
        uint8, is reduced by whole-pixel block means when the crop shrinks it more than 1.5 times (OpenCV's area
        filter at a whole factor), and is resampled bicubic; the S x S crop comes back as uint8."""
        s = self.size
        m = transform.to_matrix(s)
        x0, y0, x1, y1 = square_source(m, s, frame.shape)
        region = _channels_first(frame[y0:y1, x0:x1], self.device)
        m = m @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])  # region pixel -> crop pixel
        shrink = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))
        if shrink > 1.5:
            k = int(np.floor(shrink))
            rows, cols = region.shape[1] // k * k, region.shape[2] // k * k
            if rows and cols:
                region = F.avg_pool2d(region[None, :, :rows, :cols], k)[0]
                # Pixel centres of the reduced region back to the region's own coordinates.
                m = m @ np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1.0]])
        x, y = _affine_coordinates(cv2.invertAffineTransform(m), (s, s), self.device)
        out = _sample(region, x, y, "bicubic", "border").round().clamp(0, 255).to(torch.uint8)
        return out.permute(1, 2, 0).cpu().numpy()

    def crop_planes(self, frame: YuvImage, transform: Similarity) -> np.ndarray:
        """``crop`` of a frame kept as planes: from the RGB of the region it reads, on the device as ``crop``."""
        s = self.size
        box = even_box(square_source(transform.to_matrix(s), s, frame.shape), frame.shape)
        return self.crop(frame.rgb(box), transform.in_region(box[0], box[1]))

    def colour_matched_tensor(self, rendered: np.ndarray, original: np.ndarray) -> torch.Tensor:
        """``Compositor.colour_matched`` as a float32 (3, S, S) tensor on the device."""
        out = _channels_first(rendered, self.device)
        if not self.options.colour_match:
            return out
        diff = (_channels_first(original, self.device) - out) * self._band
        return out + gaussian_blur(diff, self.options.colour_sigma * self.size) / self._band_weight_t

    def reference_in_region(
        self, reference: ReferenceDetail, transform: Similarity, x0: int, y0: int, size: tuple[int, int]
    ) -> torch.Tensor:
        """``ReferenceDetail.in_region`` on the device: (3, h, w) float32."""
        s = reference.read.shape[0]
        ux, uy = _affine_coordinates(
            transform.to_matrix(1) @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]]) * s, size, self.device
        )
        read = _sample(_channels_first(reference.read, self.device), ux, uy, "bilinear", "border")
        read = read * reference.image.shape[0]
        image = _sample(_channels_first(reference.image, self.device), read[0], read[1], "bicubic", "border")
        return image.round().clamp(0, 255)  # OpenCV's remap of a uint8 image saturates to uint8

    def source_detail_tensor(
        self, image: torch.Tensor, roi: torch.Tensor, frame_per_crop: float, reference: torch.Tensor | None
    ) -> torch.Tensor:
        """``Compositor.with_source_detail`` on (3, h, w) float32 tensors."""
        if frame_per_crop <= 1.2:
            return image
        o = self.options
        coarse_source = gaussian_blur(roi, frame_per_crop)
        coarse_image = gaussian_blur(image, frame_per_crop)
        agree = torch.exp(-(coarse_image - coarse_source).abs().mean(0, keepdim=True) / o.detail)
        own = agree * (roi - coarse_source)
        ramp = (frame_per_crop - o.reference_from) / (o.reference_full - o.reference_from)
        if reference is None or ramp <= 0:
            return image + own
        coarse_ref = gaussian_blur(reference, frame_per_crop)
        agree_ref = torch.exp(-(coarse_image - coarse_ref).abs().mean(0, keepdim=True) / o.detail)
        weight = (1.0 - agree) * agree_ref * min(ramp, 1.0)
        fine = reference - gaussian_blur(reference, o.reference_band * frame_per_crop)
        # ``compositor._mix_gain``: the mix as strong as one texture
        return image + (own + weight * fine) * ((agree + weight) / torch.sqrt(agree * agree + weight * weight + 1e-12))

    def paste(
        self,
        frame: np.ndarray,
        rendered: np.ndarray,
        original: np.ndarray,
        transform: Similarity,
        reference: ReferenceDetail | None = None,
        jaws: np.ndarray | None = None,
    ) -> None:
        """``Compositor.paste``: blend ``rendered`` into ``frame`` in place."""
        x0, y0, x1, y1 = self.region(transform, frame.shape)
        if x1 <= x0 or y1 <= y0:
            return
        size = (x1 - x0, y1 - y0)
        m = transform.to_matrix(self.size) @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])
        x, y = _affine_coordinates(m, size, self.device)
        crop = self.colour_matched_tensor(rendered, original)
        image = _sample(crop, x, y, "bicubic", "border")
        alpha_crop = self.alpha if jaws is None else self.jaw_alpha(jaws)
        alpha = _sample(torch.from_numpy(alpha_crop).to(self.device)[None], x, y, "bilinear", "zeros")
        view = frame[y0:y1, x0:x1]
        roi = torch.from_numpy(np.ascontiguousarray(view)).to(self.device).permute(2, 0, 1)
        roi_f = roi.float()
        if self.options.detail > 0:
            frame_per_crop = transform.scale / self.size
            ref = None
            if reference is not None and frame_per_crop > self.options.reference_from:
                ref = self.reference_in_region(reference, transform, x0, y0, size)
            image = self.source_detail_tensor(image, roi_f, frame_per_crop, ref)
        blended = (roi_f * (1.0 - alpha) + image * alpha).round().clamp(0, 255).to(torch.uint8)
        out = torch.where(alpha > 0, blended, roi)
        view[...] = out.permute(1, 2, 0).cpu().numpy()
