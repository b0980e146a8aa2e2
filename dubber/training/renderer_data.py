"""Renderer training samples (``dubber.data.render_clips`` holds the clips): one target frame of a clip with K
references from the same clip at least ``min_gap`` frames away, so the renderer must warp the person's look, not copy a
neighbouring frame. Colour augmentation is shared by the target and its references (the look must still match); a
similarity jitter is drawn per sample (framing), plus a small one per image (tracking is never perfect, but about as
exact between frames as ``own_jitter`` makes it). Batches are a pure function of (seed, step, rank), so a resumed
run continues exactly.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dubber.data.render_clips import RenderClip
from dubber.render.image_tensors import to_model_range

# Similarity jitter ranges: scale (fraction), rotation (degrees), shift (fraction of the crop side).
JITTER = (0.05, 3.0, 0.02)


def _similarity(rng: np.random.Generator, fraction: float) -> np.ndarray:
    """(scale offset, angle, dx, dy) drawn uniformly within ``fraction`` of the ``JITTER`` ranges."""
    scale, angle, shift = (fraction * r for r in JITTER)
    return np.array([rng.uniform(-scale, scale), rng.uniform(-angle, angle), *rng.uniform(-shift, shift, 2)])


def _jitter(image: np.ndarray, points: np.ndarray, params: np.ndarray):
    """A small similarity about the crop centre, applied to the image and its unit-crop points."""
    size = image.shape[0]
    ds, angle, dx, dy = params
    m = cv2.getRotationMatrix2D((size / 2, size / 2), float(angle), 1.0 + float(ds))
    m[:, 2] += (dx * size, dy * size)
    out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    pts = (points * size) @ m[:, :2].T + m[:, 2]
    return out, (pts / size).astype(np.float32)


def colour_jitter(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and per-channel gain, the same for every image of one sample."""
    x = images.astype(np.float32) / 255.0
    gray = x.mean(-1, keepdims=True)
    x = gray + (x - gray) * rng.uniform(0.75, 1.25)  # saturation
    mean = x.mean()
    x = mean + (x - mean) * rng.uniform(0.8, 1.2)  # contrast
    x = x * rng.uniform(0.92, 1.08, 3) + rng.uniform(-0.08, 0.08)  # channel gain, brightness
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


class RenderSampler:
    """Draws (target, references) samples, speakers weighted by their frame count ** ``balance``."""

    def __init__(
        self, clips: list[RenderClip], n_refs: int, *, min_gap: int = 5, balance: float = 0.3, own_jitter: float = 0.2
    ) -> None:
        self.clips = clips
        self.own_jitter = own_jitter
        self.n_refs = n_refs
        self.min_gap = min_gap
        self.entries = np.array([(c, i) for c, clip in enumerate(clips) for i in range(len(clip))], dtype=np.int64)
        if len(self.entries) == 0:
            raise ValueError("no renderer training frames")
        speakers = np.array([clips[c].speaker for c in self.entries[:, 0]])
        names, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
        weight = (counts.astype(np.float64) ** balance / counts)[inverse]
        self.p = weight / weight.sum()
        self.speakers = {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, c: int, i: int, rng: np.random.Generator | None, augment: bool):
        clip = self.clips[c]
        cands = clip.reference_candidates(i, self.min_gap)
        pick_rng = rng or np.random.default_rng([c, i])
        refs = pick_rng.choice(cands, self.n_refs, replace=len(cands) < self.n_refs)
        images = [clip.crops[i]] + [clip.crops[r] for r in refs]
        points = [clip.points[i]] + [clip.points[r] for r in refs]
        if augment and rng is not None:
            images = list(colour_jitter(np.stack(images), rng))
            # One framing jitter for the whole sample, plus a small one of each image's own: the alignment error
            # between two frames of one tracked clip (pose points 0.005 crop units apart on average, train and
            # dev alike). Independent full-size jitter (0.023 apart) taught the model to undo misalignments that
            # real references do not have, and it blurred well-aligned ones on dev.
            shared = _similarity(rng, 1.0)
            pairs = [
                _jitter(im, pt, shared + _similarity(rng, self.own_jitter))
                for im, pt in zip(images, points, strict=True)
            ]
            images, points = [p[0] for p in pairs], [p[1] for p in pairs]
        return np.stack(images), np.stack(points)

    def batch(self, size: int, seed: int, step: int, rank: int = 0, augment: bool = True) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, step, rank])
        picks = self.entries[rng.choice(len(self.entries), size, p=self.p)]
        images, points = zip(*(self.sample(int(c), int(i), rng, augment) for c, i in picks), strict=True)
        images, points = to_model_range(np.stack(images)), torch.from_numpy(np.stack(points))
        return {
            "target": images[:, 0],
            "landmarks": points[:, 0],
            "refs": images[:, 1:],
            "ref_landmarks": points[:, 1:],
        }
