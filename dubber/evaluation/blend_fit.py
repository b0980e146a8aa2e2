"""Fitting a renderer's reference blend (dubber/render/reference_blend.py) on dev speakers, with an honest check.

Given the network's drawings, the reference pastes, the truth and each sample's reference mismatch, the thresholds
are chosen on a grid to maximise the mean lower-face PSNR. Thresholds fitted on the very samples they are scored on
flatter themselves, so the fit also reports a leave-one-speaker-out score: each speaker's samples blended with the
thresholds fitted on the other speakers alone. That held-out number is the one to quote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from dubber.evaluation.image_metrics import PSNR_CAP
from dubber.render.image_tensors import to_model_range, to_uint8
from dubber.render.reference_blend import ReferenceBlend, edge_ramp, reference_mismatch
from dubber.render.renderer_pipeline import reference_hint

DEFAULT_LOWS = tuple(round(x, 4) for x in np.arange(0.0, 0.0601, 0.0025))
DEFAULT_WIDTHS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04)


@dataclass
class BlendFit:
    blend: ReferenceBlend
    samples: int
    psnr: float  # mean lower-face PSNR with the fitted blend, on the samples it was fitted on
    network_psnr: float
    paste_psnr: float
    held_out_psnr: float | None  # leave-one-speaker-out (None with a single speaker)
    per_speaker: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blend"] = self.blend.to_dict()
        return d


def renderer_paste(
    network: np.ndarray,
    landmarks: np.ndarray,
    refs: np.ndarray,
    ref_landmarks: np.ndarray,
    *,
    hint_warp: bool,
    mouth_guard=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the renderer's blend mixes, for (N, S, S, 3) uint8 drawings of the network alone: the drawings as the
    pipeline keeps them (``mouth_guard`` applied about the hint), the paste (the hint: the reference nearest each
    target's mouth shape, carried onto the target's landmarks when ``hint_warp``; scored in the lower face) and the
    hint's mismatch, (N,). The hint is ``FaceRenderer``'s own (``reference_hint``): a fit against another paste (the
    unwarped nearest reference) chooses thresholds for a picture the dub never shows."""
    lm = torch.from_numpy(landmarks).float()
    ref_lm = torch.from_numpy(ref_landmarks).float()
    hint, hint_lm = reference_hint(to_model_range(refs), ref_lm, lm, warp=hint_warp)
    drawn = to_model_range(network)
    if mouth_guard is not None:
        drawn = mouth_guard(drawn, hint, lm)
    return to_uint8(drawn), to_uint8(hint), reference_mismatch(hint_lm, lm).numpy()


def blended_psnr(
    network: np.ndarray,
    paste: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    weights: np.ndarray,
    ramp: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) lower-face PSNR of ``paste + W * (network - paste)`` for uint8 images (N, S, S, 3), with (N,) frame
    weights raised to 1 by ``ramp`` (S, S) along the border, as ``blend_weight_maps`` does.

    The blend is rounded to uint8 as a written frame would be, so the numbers match ``image_metrics.psnr``.
    """
    sel = mask > 0.5
    p = paste[:, sel].astype(np.float32)
    n = network[:, sel].astype(np.float32)
    w = np.broadcast_to(np.asarray(weights, np.float32)[:, None], (len(p), p.shape[1]))
    if ramp is not None:
        r = ramp[sel][None]
        w = w + (1.0 - w) * r
    out = np.clip(np.round(p + w[..., None] * (n - p)), 0, 255)
    mse = ((out - truth[:, sel].astype(np.float32)) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-12))
    return np.minimum(np.where(mse == 0, PSNR_CAP, value), PSNR_CAP)


def by_mismatch(
    network: np.ndarray,
    paste: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    mismatch: np.ndarray,
    edges: tuple[float, ...] = (0.03, 0.06, 0.09),
) -> list[dict]:
    """Per mismatch band (``edges`` split it; the last band is open): the samples, the mean lower-face PSNR of the
    network alone and of the paste alone, and the share of samples the network draws better. Where the thresholds
    lie between the two is then a choice with its price in view."""
    ones = np.ones(len(network), np.float32)
    drawn = blended_psnr(network, paste, truth, mask, ones)
    pasted = blended_psnr(network, paste, truth, mask, 0.0 * ones)
    bounds = (0.0, *edges, np.inf)
    bands = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        sel = (mismatch >= lo) & (mismatch < hi)
        if sel.any():
            bands.append(
                {
                    "from": float(lo),
                    "to": None if np.isinf(hi) else float(hi),
                    "samples": int(sel.sum()),
                    "network": float(drawn[sel].mean()),
                    "paste": float(pasted[sel].mean()),
                    "network_better": float((drawn[sel] > pasted[sel]).mean()),
                }
            )
    return bands


def _scores(network, paste, truth, mask, mismatch, lows, widths, edge) -> dict[tuple[float, float], np.ndarray]:
    ramp = edge_ramp(mask.shape[0], edge)
    out = {}
    for low in lows:
        for width in widths:
            key = (round(float(low), 6), round(float(low) + float(width), 6))
            w = ReferenceBlend(*key, edge).weights(torch.from_numpy(mismatch)).numpy()
            out[key] = blended_psnr(network, paste, truth, mask, w, ramp)
    return out


def _best(scores: dict, select: np.ndarray) -> tuple[float, float]:
    # Ties go to the first key: the lowest thresholds, the least paste.
    return max(scores, key=lambda k: float(scores[k][select].mean()))


def fit_reference_blend(
    network: np.ndarray,
    paste: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    mismatch: np.ndarray,
    speakers: list[str],
    *,
    lows=DEFAULT_LOWS,
    widths=DEFAULT_WIDTHS,
    edge: float = ReferenceBlend.edge,
) -> BlendFit:
    """Thresholds maximising mean PSNR over all samples, and the leave-one-speaker-out check."""
    if len(network) == 0:
        raise ValueError("no samples to fit a reference blend on")
    speakers_arr = np.asarray(speakers)
    scores = _scores(network, paste, truth, mask, np.asarray(mismatch, np.float32), lows, widths, edge)
    everyone = np.ones(len(network), bool)
    best = _best(scores, everyone)
    ones, zeros = np.ones(len(network), np.float32), np.zeros(len(network), np.float32)
    network_psnr = blended_psnr(network, paste, truth, mask, ones)
    paste_psnr = blended_psnr(network, paste, truth, mask, zeros)
    names = sorted(set(speakers))
    held_out = np.full(len(network), np.nan)
    per_speaker = {}
    for name in names:
        mine = speakers_arr == name
        if len(names) > 1:
            chosen = _best(scores, ~mine)
            held_out[mine] = scores[chosen][mine]
        per_speaker[name] = {
            "samples": int(mine.sum()),
            "network": float(network_psnr[mine].mean()),
            "paste": float(paste_psnr[mine].mean()),
            "blend_fitted": float(scores[best][mine].mean()),
            "held_out_blend": list(chosen) if len(names) > 1 else None,
            "held_out": float(held_out[mine].mean()) if len(names) > 1 else None,
        }
    return BlendFit(
        blend=ReferenceBlend(*best, edge),
        samples=len(network),
        psnr=float(scores[best].mean()),
        network_psnr=float(network_psnr.mean()),
        paste_psnr=float(paste_psnr.mean()),
        held_out_psnr=float(held_out.mean()) if len(names) > 1 else None,
        per_speaker=per_speaker,
    )
