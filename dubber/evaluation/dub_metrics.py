"""Metrics of a whole dubbed video against its original (docs/ARCHITECTURE.md §9), frame by frame, streamed.

- image: PSNR on the lower face (the redrawn polygon) and on the whole frame, from summed squared errors, so a clip's
  PSNR is that of all its pixels (identical pixels: ``PSNR_CAP`` = 100 dB, the documented floor); SSIM (scikit-image's
  definition) on the lower face's bounding box (scaled to at most 160 px across) and, every 5th frame, on the whole
  frame in grey at most 360 px high;
- landmarks: LMD of the lip and jaw points found on the output against those found on the original, divided by the
  original's inter-ocular distance; mouth-opening correlation over time; jitter (mean second difference of the lip
  and jaw points, inter-ocular units); frames where the face was lost;
- seam: gradient energy on a band straddling the region's border, output over original (1 = no added edge);
- speech activity of an audio track per frame (for cross-dubbing, where no true mouth exists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from dubber.evaluation.image_metrics import PSNR_CAP, ssim
from dubber.evaluation.metrics import correlation, jitter
from dubber.face.aligner import Similarity, apply_affine, invert_affine
from dubber.face.landmarks import ALL_INDICES, LEFT_EYE_OUTER, N_POSE, RIGHT_EYE_OUTER
from dubber.render.face_mask import LOWER_FACE_POLYGON

# Where the outer eye corners (mesh points 33 and 263) sit among the 131 model points: the inter-ocular distance.
RIGHT_EYE_OUTER_AT, LEFT_EYE_OUTER_AT = ALL_INDICES.index(RIGHT_EYE_OUTER), ALL_INDICES.index(LEFT_EYE_OUTER)


def psnr_from_sums(sq_error: float, count: int) -> float | None:
    if count == 0:
        return None
    mse = sq_error / count
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def face_regions(
    transform: np.ndarray, shape: tuple[int, int], band: float = 0.03, aspect: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(inside the lower-face polygon, a band of ``band`` crop units either side of its border) in frame pixels;
    ``aspect``: the video's pixel aspect (``VideoTrack.aspect``), with which the crop is square on screen."""
    poly = apply_affine(invert_affine(Similarity(*transform, aspect=aspect).to_matrix(1)), LOWER_FACE_POLYGON)
    inside = np.zeros(shape, np.uint8)
    cv2.fillPoly(inside, [np.round(poly).astype(np.int32)], 1)
    r = max(1, int(round(band * transform[2])))  # pixel heights; as wide on screen
    rx = max(1, int(round(band * transform[2] / aspect)))
    kernel = np.ones((2 * r + 1, 2 * rx + 1), np.uint8)
    ring = cv2.dilate(inside, kernel) & (1 - cv2.erode(inside, kernel))
    return inside > 0, ring > 0


def gradient_energy(image: np.ndarray, where: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx**2 + gy**2)[where]
    return float(mag.mean()) if mag.size else 0.0


SSIM_SIDE = 160  # the lower face's SSIM is taken at most this many pixels across (1080p faces cost 15x more)


def _at_most(side: int, *images: np.ndarray) -> tuple[np.ndarray, ...]:
    h, w = images[0].shape[:2]
    if max(h, w) <= side:
        return images
    size = (max(7, round(w * side / max(h, w))), max(7, round(h * side / max(h, w))))
    return tuple(cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images)


def _small_grey(image: np.ndarray, height: int = 360) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if grey.shape[0] > height:
        grey = cv2.resize(grey, (round(grey.shape[1] * height / grey.shape[0]), height), interpolation=cv2.INTER_AREA)
    return grey[..., None]


@dataclass
class ImageScores:
    """Accumulates one output video's image metrics against the original, frame by frame."""

    sums: dict[str, list[float]] = field(default_factory=lambda: {"lower": [0.0, 0], "frame": [0.0, 0]})
    ssim_lower: list[float] = field(default_factory=list)
    ssim_frame: list[float] = field(default_factory=list)
    seam: list[float] = field(default_factory=list)

    def add(
        self,
        output: np.ndarray,
        original: np.ndarray,
        transform: np.ndarray | None,
        *,
        full_ssim: bool,
        aspect: float = 1.0,
    ) -> None:
        diff = (output.astype(np.float64) - original.astype(np.float64)) ** 2
        self.sums["frame"][0] += float(diff.sum())
        self.sums["frame"][1] += diff.size
        if full_ssim:
            self.ssim_frame.append(ssim(_small_grey(output), _small_grey(original)))
        if transform is None or not np.isfinite(transform).all():
            return
        inside, ring = face_regions(transform, original.shape[:2], aspect=aspect)
        if not inside.any():
            return
        self.sums["lower"][0] += float(diff[inside].sum())
        self.sums["lower"][1] += int(inside.sum()) * 3
        ys, xs = np.nonzero(inside)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        self.ssim_lower.append(ssim(*_at_most(SSIM_SIDE, output[box], original[box], inside[box].astype(np.float32))))
        reference = gradient_energy(original, ring)
        if reference > 0:
            self.seam.append(gradient_energy(output, ring) / reference)

    def result(self) -> dict:
        return {
            "psnr_lower": psnr_from_sums(*self.sums["lower"]),
            "psnr_frame": psnr_from_sums(*self.sums["frame"]),
            "ssim_lower": float(np.mean(self.ssim_lower)) if self.ssim_lower else None,
            "ssim_frame": float(np.mean(self.ssim_frame)) if self.ssim_frame else None,
            "seam": float(np.mean(self.seam)) if self.seam else None,
        }


def frame_points(points: np.ndarray, transforms: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """Unit-crop model points (N, 131, 2) -> stored frame pixels (to draw or cut boxes with), NaN where there is no
    face; ``aspect``: the video's pixel aspect (``VideoTrack.aspect``)."""
    out = np.full(points.shape, np.nan, np.float32)
    for i, (p, tf) in enumerate(zip(points, transforms, strict=True)):
        if np.isfinite(tf).all():
            out[i] = apply_affine(invert_affine(Similarity(*tf, aspect=aspect).to_matrix(1)), p)
    return out


def screen_points(points: np.ndarray, transforms: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """``frame_points`` as seen on screen, x in pixel heights: where distances are measured (an anamorphic video's
    stored pixels squeeze them)."""
    out = frame_points(points, transforms, aspect)
    if aspect != 1.0:
        out[..., 0] *= aspect
    return out


def landmark_scores(found: np.ndarray, truth: np.ndarray, found_open: np.ndarray, truth_open: np.ndarray) -> dict:
    """Landmarks found on an output vs on the original, both (N, 131, 2) frame pixels (NaN: no face)."""
    n = min(len(found), len(truth))
    found, truth = found[:n], truth[:n]
    io = np.linalg.norm(truth[:, LEFT_EYE_OUTER_AT] - truth[:, RIGHT_EYE_OUTER_AT], axis=-1)
    has_truth = np.isfinite(truth).all(axis=(1, 2))
    has_found = np.isfinite(found).all(axis=(1, 2))
    both = has_truth & has_found
    d = np.linalg.norm(found[both, N_POSE:] - truth[both, N_POSE:], axis=-1).mean(-1) / np.maximum(io[both], 1e-6)
    return {
        "lmd": float(d.mean()) if len(d) else None,
        "opening_correlation": correlation(truth_open[:n], found_open[:n]),
        "jitter": content_jitter(normalised_content(found), has_found),
        "face_lost": int((has_truth & ~has_found).sum()),
    }


def normalised_content(points: np.ndarray) -> np.ndarray:
    """Lip and jaw points (N, 57, 2) in units of each frame's own inter-ocular distance."""
    io = np.linalg.norm(points[:, LEFT_EYE_OUTER_AT] - points[:, RIGHT_EYE_OUTER_AT], axis=-1)
    return points[:, N_POSE:] / np.maximum(io, 1e-6)[:, None, None]


def content_jitter(content: np.ndarray, ok: np.ndarray) -> float | None:
    """Mean jitter over runs of consecutive frames with a face (a lost face must not count as a jump)."""
    values, weights = [], []
    start = None
    for i, good in enumerate(list(ok) + [False]):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start >= 3:
                values.append(jitter(content[start:i]))
                weights.append(i - start)
            start = None
    return float(np.average(values, weights=weights)) if values else None


def speech_activity(samples: np.ndarray, rate: int, times: np.ndarray, window: float = 0.08) -> np.ndarray:
    """Per frame time, the log RMS energy (dB) of ``window`` seconds of mono audio centred on it."""
    half = int(window * rate / 2)
    out = np.empty(len(times), np.float64)
    for k, t in enumerate(times):
        c = int(round(t * rate))
        seg = samples[max(0, c - half) : c + half]
        out[k] = 10 * np.log10(float(np.mean(seg.astype(np.float64) ** 2)) + 1e-10) if len(seg) else -100.0
    return out
