"""The two models together on dev clips: landmarks predicted from the audio drive the renderer; the generated lower
face is compared with the true frame (PSNR, SSIM) and the landmarks found on it with the true ones. This is what
end-to-end training should improve, and what ``dub train joint`` reports before and after."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dubber.data.cache import PrepCache
from dubber.data.clip_arrays import ClipArrays, load_clips, reference_indices
from dubber.evaluation.image_metrics import PSNR_CAP, psnr, ssim
from dubber.evaluation.renderer_eval import DevSamples, build_dev_samples, detect_content, normalised_lmd
from dubber.evaluation.renderer_monitor import dev_clips_for_eval, face_backend
from dubber.face.landmarks import N_POSE
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_sequence import predict_sequence
from dubber.render.face_mask import lower_face_mask
from dubber.render.renderer_pipeline import FaceRenderer


class EndToEndDev:
    def __init__(self, clips: dict[str, ClipArrays], dev: DevSamples | None, backend) -> None:
        self.clips, self.dev, self.backend = clips, dev, backend

    @classmethod
    def from_cache(
        cls,
        cache: PrepCache,
        n_lm_refs: int,
        n_refs: int,
        size: int,
        per_clip: int = 3,
        per_speaker: int = 4,
        speech: tuple[str, int] | None = None,
    ) -> EndToEndDev:
        clips = {c.clip_id: c for c in load_clips(cache, "dev", min_frames=5, speech=speech)}
        render = [c for c in dev_clips_for_eval(cache, size, per_speaker, 5) if c.clip_id in clips]
        dev = build_dev_samples(render, n_refs, per_clip) if render else None
        return cls(clips, dev, face_backend() if dev is not None else None)

    def predicted_landmarks(self, completer: LandmarkCompleter) -> np.ndarray:
        """(N, 131, 2): the true pose points with the completer's lip and jaw points at each sample's frame."""
        completer.eval()
        out = self.dev.landmarks.copy()
        cache: dict[str, np.ndarray] = {}
        for n, (cid, f) in enumerate(zip(self.dev.clip_ids, self.dev.frame_index, strict=True)):
            if cid not in cache:
                c = self.clips[cid]
                refs = c.points[reference_indices(c, completer.config.n_refs, None)]
                cache[cid] = predict_sequence(completer, c.audio_windows.astype(np.float32), c.pose, refs)
            out[n, N_POSE:] = cache[cid][f]
        return out

    def evaluate(self, completer: LandmarkCompleter, renderer: FaceRenderer, *, steps: int, seed: int) -> dict:
        from dubber.evaluation.renderer_eval import render_samples

        if self.dev is None:
            return {}
        predicted = self.predicted_landmarks(completer)
        generated = render_samples(renderer, replace(self.dev, landmarks=predicted), steps=steps, seed=seed)
        mask = lower_face_mask(self.dev.targets.shape[1])
        out = {
            "e2e_samples": len(self.dev),
            "e2e_psnr": float(
                np.mean([psnr(g, t, mask, cap=PSNR_CAP) for g, t in zip(generated, self.dev.targets, strict=True)])
            ),
            "e2e_ssim": float(np.mean([ssim(g, t, mask) for g, t in zip(generated, self.dev.targets, strict=True)])),
            "e2e_landmark_lmd": float(np.nanmean(normalised_lmd(predicted[:, N_POSE:], self.dev.landmarks))),
        }
        if self.backend is not None:
            found = normalised_lmd(detect_content(generated, self.backend), self.dev.landmarks)
            out["e2e_image_lmd"] = float(np.nanmean(found)) if np.isfinite(found).any() else None
        return out
