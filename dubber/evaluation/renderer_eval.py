"""The renderer on held-out speakers' crops: does the generated lower face follow its landmarks, and look like them?

Per dev sample (a target frame, its true landmarks, K references from the same clip at least 5 frames away, chosen
spread over the mouth-opening range as inference chooses them):
- PSNR and SSIM on the lower face (the redrawn region) against the true crop;
- LMD: the face backend's lip and jaw landmarks on the generated crop against the landmarks that conditioned it,
  over the inter-ocular distance. The same backend on the true crop gives the floor (the backend's own noise).
Baseline in the same run, "reference paste": the reference whose lip/jaw shape is nearest the target's has its
lower face pasted into the target. "model" is what the pipeline draws (with the weights' reference blend, if they
carry one); weights with a blend also get a "network" row, the network's drawing alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from dubber.data.clip_arrays import content_opening
from dubber.data.render_clips import RenderClip
from dubber.evaluation.image_metrics import PSNR_CAP, psnr, ssim
from dubber.face.landmarks import ALL_INDICES, CONTENT_INDICES, LEFT_EYE_OUTER, N_POSE, RIGHT_EYE_OUTER
from dubber.models.reference_choice import spread_references
from dubber.render.face_mask import lower_face_mask
from dubber.render.image_tensors import to_model_range, to_uint8
from dubber.render.renderer_pipeline import FaceRenderer

_EYES = (ALL_INDICES.index(RIGHT_EYE_OUTER), ALL_INDICES.index(LEFT_EYE_OUTER))
_CONTENT = np.asarray(CONTENT_INDICES)
LMD_BAR = 0.05


@dataclass
class DevSamples:
    """Fixed dev samples, built once and rendered at every evaluation."""

    clip_ids: list[str]
    speakers: list[str]
    frame_index: np.ndarray  # (N,) frame positions in their clips
    targets: np.ndarray  # (N, S, S, 3) uint8
    landmarks: np.ndarray  # (N, 131, 2)
    refs: np.ndarray  # (N, K, S, S, 3)
    ref_landmarks: np.ndarray  # (N, K, 131, 2)

    def __len__(self) -> int:
        return len(self.targets)


def choose_references(clip: RenderClip, i: int, count: int, min_gap: int) -> np.ndarray:
    cands = clip.reference_candidates(i, min_gap)
    opening = content_opening(clip.points[:, N_POSE:])
    return spread_references(opening, cands, count, None)


def build_dev_samples(clips: list[RenderClip], n_refs: int, per_clip: int, min_gap: int = 5) -> DevSamples:
    rows = []
    for clip in clips:
        for i in np.unique(np.round(np.linspace(0, len(clip) - 1, per_clip)).astype(int)):
            refs = choose_references(clip, int(i), n_refs, min_gap)
            rows.append(
                (
                    clip.clip_id,
                    clip.speaker,
                    clip.frame_index[i],
                    clip.crops[i],
                    clip.points[i],
                    clip.crops[refs],
                    clip.points[refs],
                )
            )
    if not rows:
        raise ValueError("no dev samples")
    ids, spk, fi, t, lm, r, rl = zip(*rows, strict=True)
    return DevSamples(list(ids), list(spk), np.array(fi), np.stack(t), np.stack(lm), np.stack(r), np.stack(rl))


def render_samples(
    renderer: FaceRenderer,
    dev: DevSamples,
    *,
    steps: int,
    seed: int,
    batch: int = 16,
    guidance: float = 1.0,
    blend: bool = True,
) -> np.ndarray:
    out = []
    for s in range(0, len(dev), batch):
        sl = slice(s, s + batch)
        gen = renderer(
            to_model_range(dev.targets[sl]),
            torch.from_numpy(dev.landmarks[sl]),
            to_model_range(dev.refs[sl]),
            torch.from_numpy(dev.ref_landmarks[sl]),
            steps=steps,
            seed=seed,
            guidance=guidance,
            blend=blend,
        )
        out.append(to_uint8(gen))
    return np.concatenate(out)


def reference_paste(dev: DevSamples) -> np.ndarray:
    mask = lower_face_mask(dev.targets.shape[1])[..., None]
    d = np.linalg.norm(dev.ref_landmarks[:, :, N_POSE:] - dev.landmarks[:, None, N_POSE:], axis=-1).mean(-1)
    nearest = dev.refs[np.arange(len(dev)), d.argmin(1)]
    return (nearest * mask + dev.targets * (1 - mask)).round().astype(np.uint8)


def detect_content(images: np.ndarray, backend) -> np.ndarray:
    """(N, 57, 2) lip and jaw points found by ``backend`` on each crop (unit coordinates; NaN where none)."""
    out = np.full((len(images), len(_CONTENT), 2), np.nan, np.float32)
    for n, img in enumerate(images):
        big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # FaceMesh prefers 192+ px faces
        backend.reset()
        pts = backend.landmarks(big)
        if pts is not None:
            out[n] = pts[_CONTENT, :2] / big.shape[0]
    return out


def normalised_lmd(found: np.ndarray, conditioning: np.ndarray) -> np.ndarray:
    """(N,) per-sample mean lip/jaw distance over the inter-ocular distance (NaN where nothing was found)."""
    iod = np.linalg.norm(conditioning[:, _EYES[1]] - conditioning[:, _EYES[0]], axis=-1)
    return np.linalg.norm(found - conditioning[:, N_POSE:], axis=-1).mean(-1) / np.maximum(iod, 1e-6)


@dataclass
class RendererEvalReport:
    steps: int
    scheduler: str
    samples: int
    groups: dict[str, dict[str, dict]]  # group -> method -> metric -> value
    bars: dict[str, dict]
    seconds: float
    per_sample: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, default=float))

    def markdown(self) -> str:
        lines = ["| speakers | method | PSNR lower face (dB) | SSIM lower face | LMD / inter-ocular | faces found |"]
        lines.append("|---|---|---|---|---|---|")
        for group, methods in self.groups.items():
            for m, s in methods.items():
                lm = "-" if s["lmd"] is None else f"{s['lmd']:.4f}"
                lines.append(
                    f"| {group} ({s['samples']}) | {m} | {s['psnr']:.2f} | {s['ssim']:.4f} | {lm} | {s['found']:.0%} |"
                )
        return "\n".join(lines)


def _summary(rows: list[dict], method: str) -> dict:
    ps = np.array([r[f"{method}_psnr"] for r in rows], np.float64)
    ss = np.array([r[f"{method}_ssim"] for r in rows], np.float64)
    lm = np.array([np.nan if r[f"{method}_lmd"] is None else r[f"{method}_lmd"] for r in rows], np.float64)
    found = np.isfinite(lm)
    return {
        "samples": len(rows),
        "psnr": float(np.mean(np.minimum(ps, PSNR_CAP))),
        "ssim": float(np.mean(ss)),
        "lmd": float(lm[found].mean()) if found.any() else None,
        "found": float(found.mean()) if len(rows) else 0.0,
    }


def evaluate_renderer(
    renderer: FaceRenderer,
    dev: DevSamples,
    *,
    steps: int = 8,
    seed: int = 0,
    backend=None,
    train_speakers: set[str] | None = None,
    guidance: float = 1.0,
) -> tuple[RendererEvalReport, np.ndarray]:
    """Metrics for the model, the reference-paste baseline and the truth; returns the report and the renders."""
    t0 = time.perf_counter()
    generated = render_samples(renderer, dev, steps=steps, seed=seed, guidance=guidance)
    pasted = reference_paste(dev)
    mask = lower_face_mask(dev.targets.shape[1])
    images = {"model": generated}
    if renderer.reference_blend is not None:
        images["network"] = render_samples(renderer, dev, steps=steps, seed=seed, guidance=guidance, blend=False)
    images.update({"reference_paste": pasted, "truth": dev.targets})
    lmds = {}
    for method, imgs in images.items():
        if backend is None:
            lmds[method] = np.full(len(dev), np.nan)
        else:
            lmds[method] = normalised_lmd(detect_content(imgs, backend), dev.landmarks)
    rows = []
    for n in range(len(dev)):
        row = {"clip_id": dev.clip_ids[n], "speaker": dev.speakers[n]}
        for method, imgs in images.items():
            row[f"{method}_psnr"] = psnr(imgs[n], dev.targets[n], mask, cap=PSNR_CAP)
            row[f"{method}_ssim"] = ssim(imgs[n], dev.targets[n], mask)
            v = lmds[method][n]
            row[f"{method}_lmd"] = None if not np.isfinite(v) else float(v)
        rows.append(row)
    groups = {"all": rows}
    if train_speakers is not None:
        groups = {
            "unseen": [r for r in rows if r["speaker"] not in train_speakers],
            "seen": [r for r in rows if r["speaker"] in train_speakers],
            "all": rows,
        }
    summary = {g: {m: _summary(rs, m) for m in images} for g, rs in groups.items() if rs}
    main = summary.get("unseen", summary["all"])
    lmd_model = main["model"]["lmd"]
    bars = {
        "lmd_follows_landmarks": {
            "value": lmd_model,
            "limit": LMD_BAR,
            "pass": lmd_model is not None and lmd_model < LMD_BAR,
        },
        "psnr_beats_reference_paste": {
            "value": main["model"]["psnr"],
            "baseline": main["reference_paste"]["psnr"],
            "pass": main["model"]["psnr"] > main["reference_paste"]["psnr"],
        },
    }
    report = RendererEvalReport(
        steps, renderer.scheduler_name, len(dev), summary, bars, round(time.perf_counter() - t0, 1), rows
    )
    return report, generated
