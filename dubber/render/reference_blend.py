"""Trust a real reference frame where it already shows the target mouth (docs/RENDERER.md "Reference blend").

The residual renderer starts from the nearest reference's lower face (the paste) and draws a correction towards the
target landmarks. When that reference's lip and jaw points already sit on the target's, the real pixels are the
best picture there is, and a small network's correction only costs detail; when they are far apart, the network is
what moves the mouth. The blend weight of the network's output follows that mismatch (lip/jaw point distance over
the inter-ocular distance, the same measure the renderer's LMD bar uses): 0 at or below ``paste_below``, 1 at or
above ``model_above``, linear between. Optionally (``edge``, a fraction of the crop side) the weight rises to 1
along the region's border, where the network draws the skin that meets this very frame's; measured, it made no
difference to the seam of whole dubs (docs/RENDERER.md), so the shipped blend has no border. The thresholds are a
property of a set of weights (renderer.json), fitted on dev speakers with a leave-one-speaker-out check
(docs/RENDERER.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from dubber.face.landmarks import ALL_INDICES, LEFT_EYE_OUTER, N_POSE, RIGHT_EYE_OUTER
from dubber.render.face_mask import lower_face_mask

_EYES = (ALL_INDICES.index(RIGHT_EYE_OUTER), ALL_INDICES.index(LEFT_EYE_OUTER))


@lru_cache(maxsize=8)
def edge_ramp(size: int, edge: float) -> np.ndarray:
    """(size, size) float32: 1 on the region's border, falling linearly to 0 at ``edge * size`` pixels inside it."""
    hard = (lower_face_mask(size) > 0.5).astype(np.uint8)
    width = edge * size
    if width <= 0:
        ramp = np.zeros((size, size), np.float32)
    else:
        inside = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
        ramp = (np.clip(1.0 - (inside - 1.0) / width, 0.0, 1.0) * hard).astype(np.float32)
    ramp.setflags(write=False)  # cached and shared
    return ramp


@dataclass(frozen=True)
class ReferenceBlend:
    paste_below: float
    model_above: float
    edge: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.paste_below <= self.model_above:
            raise ValueError(f"reference blend needs 0 <= paste_below <= model_above, got {self.to_dict()}")
        if not 0 <= self.edge < 0.5:
            raise ValueError(f"reference blend edge must be in [0, 0.5), got {self.edge}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ReferenceBlend:
        """From renderer.json; ValueError (which weight loading reports in one line) for anything malformed."""
        if not isinstance(values, dict) or not {"paste_below", "model_above"} <= values.keys():
            raise ValueError(f"reference_blend needs paste_below and model_above, got {values!r}")
        return cls(**{k: float(v) for k, v in values.items() if k in ("paste_below", "model_above", "edge")})

    def weights(self, mismatch: torch.Tensor) -> torch.Tensor:
        """(B,) network weight in [0, 1] for each frame's reference mismatch."""
        width = self.model_above - self.paste_below
        if width <= 0:
            return (mismatch > self.paste_below).to(mismatch.dtype)
        return ((mismatch - self.paste_below) / width).clamp(0.0, 1.0)


def reference_mismatch(ref_landmarks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(B,) distance from each target's lip/jaw points to the nearest reference's, over the target's inter-ocular
    distance. ``ref_landmarks`` (B, K, 131, 2), ``landmarks`` (B, 131, 2); the renderer passes its hint alone (K 1)."""
    ref = ref_landmarks[:, :, N_POSE:].float()
    target = landmarks[:, None, N_POSE:].float()
    distance = (ref - target).norm(dim=-1).mean(-1).min(dim=1).values
    iod = (landmarks[:, _EYES[1]] - landmarks[:, _EYES[0]]).float().norm(dim=-1)
    return distance / iod.clamp_min(1e-6)


def blend_weight_maps(blend: ReferenceBlend, mismatch: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, S, S) network weight per pixel: the frame's weight, raised to 1 along the border."""
    w = blend.weights(mismatch)[:, None, None, None]
    ramp = torch.from_numpy(edge_ramp(size, blend.edge).copy()).to(w)
    return w + (1.0 - w) * ramp


def blend_with_paste(
    generated: torch.Tensor, paste: torch.Tensor, mismatch: torch.Tensor, blend: ReferenceBlend
) -> torch.Tensor:
    """``paste + W * (generated - paste)``, ``W`` from ``blend_weight_maps``; images (B, 3, S, S)."""
    w = blend_weight_maps(blend, mismatch.float(), generated.shape[-1]).to(generated.dtype)
    return paste + w * (generated - paste)
