"""The renderer's dev evaluation during training (``train_renderer(make_monitor=RendererMonitor)``): fixed dev
samples rendered every N steps, their metrics for the log and a PNG grid (``RUN/grids/step_NNNNNNN.png``)."""

from __future__ import annotations

from pathlib import Path

import torch

from dubber.data.cache import PrepCache
from dubber.data.render_clips import RenderClip, load_render_clips
from dubber.evaluation.grids import save_grid
from dubber.evaluation.renderer_eval import build_dev_samples, detect_content, evaluate_renderer
from dubber.log import get_logger
from dubber.models.renderer_unet import RendererUNet
from dubber.render.renderer_pipeline import FaceRenderer

log = get_logger("evaluation")


def dev_clips_for_eval(cache: PrepCache, size: int, per_speaker: int, min_gap: int) -> list[RenderClip]:
    """A few dev clips per speaker (GRID s1 alone has 50): every dev speaker counts, none dominates."""
    return load_render_clips(cache, ("dev",), size=size, max_frames=60, min_gap=min_gap, per_speaker=per_speaker)


def face_backend():
    """The static-image face backend for measuring landmarks on generated crops (None without mediapipe)."""
    try:
        from dubber.face.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(static=True)
    except Exception as exc:  # noqa: BLE001 - evaluation degrades to image metrics only
        log.warning("no face backend for the landmark metric (%s)", exc)
        return None


class RendererMonitor:
    """Dev metrics and PNG grids on fixed samples; made from what ``train_renderer`` knows of its run."""

    def __init__(self, cache: PrepCache, run: Path, cfg, n_refs: int, size: int) -> None:
        """``cfg``: the run's RendererTrainConfig (eval_steps, seed, dev_per_clip, dev_clips_per_speaker, min_gap)."""
        self.run, self.cfg = run, cfg
        clips = dev_clips_for_eval(cache, size, cfg.dev_clips_per_speaker, cfg.min_gap)
        self.dev = build_dev_samples(clips, n_refs, cfg.dev_per_clip, cfg.min_gap) if clips else None
        self.backend = face_backend() if self.dev is not None else None

    def __call__(self, unet: RendererUNet, step: int, train_speakers: set[str]) -> dict:
        if self.dev is None:
            return {}
        report, generated = evaluate_renderer(
            FaceRenderer(unet, hint_warp=getattr(self.cfg, "hint_warp", False)),
            self.dev,
            steps=self.cfg.eval_steps,
            seed=self.cfg.seed,
            backend=self.backend,
            train_speakers=train_speakers,
        )
        rows = min(8, len(self.dev))
        pick = [int(i) for i in torch.linspace(0, len(self.dev) - 1, rows).round().long()]
        found = detect_content(generated[pick], self.backend) if self.backend is not None else None
        save_grid(
            self.run / "grids" / f"step_{step:07d}.png",
            self.dev.targets[pick],
            generated[pick],
            self.dev.landmarks[pick],
            found,
        )
        out = {}
        for group, methods in report.groups.items():
            for method, s in methods.items():
                for k in ("psnr", "ssim", "lmd"):
                    out[f"{group}_{method}_{k}"] = s[k]
        return out
