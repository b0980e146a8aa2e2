"""Image metrics inside a region (the lower face): PSNR and SSIM on uint8 RGB, as scikit-image defines SSIM with
Gaussian weights (sigma 1.5, K1 0.01, K2 0.03), averaged over the region's pixels."""

from __future__ import annotations

import math

import cv2
import numpy as np

PSNR_CAP = 100.0  # identical images: reported as this instead of infinity where a finite number is needed


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, *, cap: float | None = None) -> float:
    """PSNR in dB of uint8 images (H, W, C) over ``mask`` (H, W) > 0.5; inf for identical pixels (or ``cap``)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    sq = diff**2
    if mask is not None:
        sel = mask > 0.5
        sq = sq[sel]
    mse = float(sq.mean()) if sq.size else 0.0
    if mse == 0.0:
        return math.inf if cap is None else cap
    value = 10.0 * math.log10(255.0**2 / mse)
    return value if cap is None else min(value, cap)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (H, W), averaged over channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]

    def blur(z: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)
        return out if out.ndim == 3 else out[..., None]

    # Sample (N-1) covariances, as scikit-image uses, so the two agree.
    n = 11 * 11
    cov_norm = n / (n - 1)
    mx, my = blur(x), blur(y)
    vx = cov_norm * (blur(x * x) - mx * mx)
    vy = cov_norm * (blur(y * y) - my * my)
    vxy = cov_norm * (blur(x * y) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(-1)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    s = ssim_map(a, b)
    if mask is None:
        return float(s.mean())
    sel = mask > 0.5
    return float(s[sel].mean()) if sel.any() else float("nan")
