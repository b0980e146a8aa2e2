"""Outside the mouth, the drawing may only shade the warped hint, not repaint it (docs/RENDERER.md "Mouth guard").

The hint is the speaker's own lower face carried onto the target's landmarks (dubber/render/hint_warp.py): outside the
lips it already shows the right cheeks, chin and jaw line. The small one-step network is what opens and shapes the
mouth, but elsewhere it repaints what it cannot see well: on a portrait whose collar sits right under the chin it drew
the collar's dark into the cheek and pale skin over the collar, ghost outlines of the region's corners. So the output
is the network's drawing inside the lips' hull (widened by ``dilate`` of the crop side and feathered), and elsewhere the
hint plus the drawing's smooth difference from it (a Gaussian of ``sigma`` crop pixels) limited to ``shade`` levels of
255: the network's shading as the mouth moves, not its texture or its smudges.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from dubber.face.landmarks import OUTER_LIP_POINTS


@dataclass(frozen=True)
class MouthGuard:
    shade: float = 12.0  # levels of 255 the drawing's smooth difference from the hint may reach outside the mouth
    sigma: float = 4.0 / 128  # what counts as smooth: a Gaussian of this fraction of the crop side
    dilate: float = 6.0 / 128  # the lips' hull widened by this fraction of the crop side ...
    feather: float = 3.0 / 128  # ... with a soft edge of this width

    def __post_init__(self) -> None:
        if self.shade < 0 or self.sigma <= 0 or self.dilate < 0 or self.feather <= 0:
            raise ValueError(f"mouth guard needs shade >= 0, sigma > 0, dilate >= 0, feather > 0: {self.to_dict()}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MouthGuard:
        """From renderer.json; ValueError (which weight loading reports in one line) for anything malformed."""
        try:
            return cls(**{k: float(v) for k, v in values.items() if k in cls.__dataclass_fields__})
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"mouth_guard must be a table of non-negative numbers, got {values!r}") from None

    def mouth_weight(self, landmarks: torch.Tensor, size: int) -> torch.Tensor:
        """(B, 1, S, S) float32 in [0, 1]: 1 over the (B, 131, 2) targets' lips, widened and feathered."""
        lips = landmarks[:, OUTER_LIP_POINTS].detach().float().cpu().numpy() * size
        radius = int(round(self.dilate * size))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        out = np.empty((len(lips), 1, size, size), np.float32)
        for k, points in enumerate(lips):
            hull = np.zeros((size, size), np.float32)
            cv2.fillConvexPoly(hull, np.round(cv2.convexHull(points)).astype(np.int32), 1.0)
            if radius:
                hull = cv2.dilate(hull, kernel)
            out[k, 0] = cv2.GaussianBlur(hull, (0, 0), self.feather * size)
        return torch.from_numpy(out)

    def __call__(self, drawn: torch.Tensor, hint: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) drawings in [-1, 1], guarded by the (B, 3, S, S) warped hints outside the targets' mouths."""
        size = drawn.shape[-1]
        weight = self.mouth_weight(landmarks, size).to(drawn.device)
        diff = drawn.float() - hint.float()
        smooth = _gaussian_blur(diff, self.sigma * size)
        limit = self.shade / 127.5  # levels of 255 in the [-1, 1] range
        largest = smooth.abs().amax(dim=1, keepdim=True)  # one scale for the three channels: the hue is kept
        shading = smooth * (limit / largest.clamp_min(limit))
        outside = hint.float() + shading
        return (weight * drawn.float() + (1 - weight) * outside).to(drawn.dtype)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred by a separable Gaussian of ``sigma`` pixels, edges replicated (as OpenCV's default
    reflects; the difference lies at the crop's border, far from the mouth): ``M_h @ images @ M_w^T``, each ``M`` the
    1-D blur with its replicated edge folded in. A matrix product is 7 times faster on a CPU than the depthwise
    convolution it equals (1.2 -> 0.16 ms a 128 px crop), to float rounding."""
    h, w = images.shape[-2:]
    rows = _blur_matrix(h, sigma, images.device, images.dtype)
    cols = rows if w == h else _blur_matrix(w, sigma, images.device, images.dtype)
    return rows @ images @ cols.T


def _blur_matrix(n: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n, n): row i holds the Gaussian taps of output pixel i, a tap past the edge added to the edge pixel."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=device)
    taps = torch.exp(-0.5 * (offsets.float() / sigma) ** 2)
    taps = taps / taps.sum()
    columns = (torch.arange(n, device=device)[:, None] + offsets).clamp(0, n - 1)
    matrix = torch.zeros(n, n, device=device)
    matrix.scatter_add_(1, columns, taps.expand(n, -1).contiguous())
    return matrix.to(dtype)
