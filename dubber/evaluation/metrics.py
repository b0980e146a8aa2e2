"""Landmark and motion metrics shared by every evaluation (landmarks now, full dubs later)."""

from __future__ import annotations

import math

import numpy as np


def landmark_distance(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame mean Euclidean distance between matching points: (N, P, 2) x2 -> (N,)."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(truth, np.float64), axis=-1).mean(axis=-1)


def lmd(pred: np.ndarray, truth: np.ndarray, normaliser: np.ndarray | float | None = None) -> float:
    """Mean landmark distance over frames; divided per frame by ``normaliser`` (e.g. inter-ocular distance)."""
    d = landmark_distance(pred, truth)
    if normaliser is not None:
        d = d / np.maximum(np.asarray(normaliser, np.float64), 1e-9)
    return float(d.mean()) if len(d) else float("nan")


def lagged_correlation(pred: np.ndarray, truth: np.ndarray, max_lag: int) -> tuple[int, float | None]:
    """The shift of ``pred`` within +-max_lag frames that correlates best with ``truth``: (lag, correlation).

    A positive lag means the prediction comes late (``pred[i + lag]`` matches ``truth[i]``). An audio-driven
    prediction comes late when the clip's sound is late against its picture: the field's sync scores (SyncNet's
    offset and confidence) search offsets the same way. NaN marks unusable frames.
    """
    pred = np.asarray(pred, np.float64)
    truth = np.asarray(truth, np.float64)
    best: tuple[int, float | None] = (0, None)
    for lag in range(-max_lag, max_lag + 1):
        a = pred[lag:] if lag >= 0 else pred[:lag]
        b = truth[: len(truth) - lag] if lag >= 0 else truth[-lag:]
        r = correlation(a, b)
        if r is not None and (best[1] is None or r > best[1]):
            best = (lag, r)
    return best


def velocity_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance between predicted and true frame-to-frame point motion (same units as the points)."""
    if len(pred) < 2:
        return float("nan")
    return float(landmark_distance(np.diff(pred, axis=0), np.diff(truth, axis=0)).mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, or None when either signal is (near) constant or too short to correlate."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3:
        return None
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return None
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def jitter(points: np.ndarray) -> float:
    """Mean second difference (acceleration) of points: frame-to-frame wobble that motion does not explain."""
    if len(points) < 3:
        return float("nan")
    return float(np.linalg.norm(np.diff(points, n=2, axis=0), axis=-1).mean())


def nanmean(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None
