"""Sampling the renderer: the TalkFormer UNet + a diffusers scheduler, diffusers' pipeline / model / scheduler split.

``FaceRenderer(crops, landmarks, refs, ref_landmarks)`` redraws the lower face of a batch of aligned crops so it
follows the target landmarks. Every frame starts from the same initial noise (one seeded (3, S, S) draw), so
neighbouring frames, and the frames on either side of a chunk boundary, share their stochastic part and do not
flicker. Classifier-free guidance (``guidance > 1``) runs the landmark-free branch in the same batch. Weights that
carry a reference blend (renderer.json ``reference_blend``) keep the nearest reference's real lower face where its
landmarks already match the target's (dubber/render/reference_blend.py); frames the blend gives to that reference
alone are not drawn. Weights that say so (renderer.json ``hint_warp``) get their hint carried onto the target's
landmarks by a thin-plate spline first (dubber/render/hint_warp.py); weights with a mouth guard (renderer.json
``mouth_guard``) keep the drawing to the mouth and the hint's shading elsewhere (dubber/render/mouth_guard.py);
weights with ``reference_key_side`` pool each reference's tokens to that side before the attention reads them
(dubber/render/reference_keys.py). The denoiser's conditioning (cross-attention keys and values, the input conv's
share of the masked crop) is computed once
per batch and reused at every step (``RendererUNet.condition`` / ``denoise``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from dubber.models.diffusers_parts import DDIMScheduler, DDPMScheduler
from dubber.models.renderer_unet import RendererUNet, nearest_reference_index
from dubber.render.face_mask import lower_face_mask
from dubber.render.hint_warp import thin_plate_warp
from dubber.render.mouth_guard import MouthGuard
from dubber.render.reference_blend import ReferenceBlend, blend_with_paste, reference_mismatch
from dubber.render.reference_keys import pool_reference_tokens

SCHEDULERS = ("ddim", "dpm++")
TRAIN_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False)
PIPELINE_CONFIG = "renderer.json"
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"  # diffusers' name, inside the pipeline folder


def training_scheduler(prediction_type: str = "sample") -> DDPMScheduler:
    return DDPMScheduler(**TRAIN_SCHEDULE, prediction_type=prediction_type)


def make_scheduler(name: str, prediction_type: str = "sample"):
    """A few-step sampler over the training schedule; "trailing" spacing so step 1 starts from pure noise."""
    common = dict(**TRAIN_SCHEDULE, prediction_type=prediction_type, timestep_spacing="trailing")
    if name == "ddim":
        return DDIMScheduler(**common, set_alpha_to_one=False)
    if name == "dpm++":
        from diffusers import DPMSolverMultistepScheduler  # here: ``one_step_is_the_estimate`` says why

        common.pop("clip_sample")
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")


def one_step_is_the_estimate(name: str, steps: int, prediction_type: str) -> bool:
    """Whether sampling is the model's one clean estimate, which the sampler then computes without a scheduler:
    DPM-Solver++'s one step from pure noise ends at sigma 0, where it returns an x0-predicting model's output exactly
    (DDIM's last step does not reach alpha 1 here: ``set_alpha_to_one=False``). It spares a one-step dub the import
    of the DPM scheduler's module, which imports scipy.stats (0.6 s of the dub's start on a CPU)."""
    return steps == 1 and name == "dpm++" and prediction_type == "sample"


def initial_noise(size: int, seed: int, device, dtype) -> torch.Tensor:
    """(1, 3, S, S): drawn on the CPU so a seed gives the same frames on every device."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((1, 3, size, size), generator=g).to(device=device, dtype=dtype)


def reference_hint(
    refs: torch.Tensor,
    ref_landmarks: torch.Tensor,
    landmarks: torch.Tensor,
    *,
    warp: bool,
    index: torch.Tensor | None = None,
    read: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each frame's hint, which is also the reference blend's paste: of (B, K, 3, S, S) ``refs`` with (B, K, 131, 2)
    landmarks, the one whose mouth shape is nearest the (B, 131, 2) target's (or ``index``, (B,)), carried onto the
    target's landmarks when ``warp`` (by ``read``, its ``thin_plate_read``, when the caller has it with ``index``);
    and that reference's landmarks, (B, 1, 131, 2). On ``landmarks``' device."""
    device = landmarks.device
    pick = nearest_reference_index(ref_landmarks.to(device), landmarks) if index is None else index.to(device)
    rows = torch.arange(len(landmarks), device=device)
    hint, hint_landmarks = refs[rows, pick], ref_landmarks.to(device)[rows, pick][:, None]
    if warp:  # the paste moves with it; the blend still weighs how far the hint had to move
        hint = thin_plate_warp(hint, hint_landmarks[:, 0], landmarks, None if index is None else read)
    return hint, hint_landmarks


class FaceRenderer:
    """The renderer pipeline. Tensors in, tensors out: crops in [-1, 1], (B, 3, S, S)."""

    def __init__(
        self,
        unet: RendererUNet,
        scheduler: str = "dpm++",
        default_steps: int = 8,
        reference_blend: ReferenceBlend | None = None,
        hint_warp: bool = False,
        mouth_guard: MouthGuard | None = None,
        reference_key_side: int | None = None,
    ) -> None:
        self.unet = unet.eval()
        self.scheduler_name = scheduler
        # The step count these weights were measured best at (renderer.json "steps"); callers may ask for any.
        self.default_steps = int(default_steps)
        if reference_blend is not None and not unet.config.reference_hint:
            raise ValueError("a reference blend needs a renderer that takes the reference hint")
        self.reference_blend = reference_blend
        if hint_warp and not unet.config.reference_hint:
            raise ValueError("a hint warp needs a renderer that takes the reference hint")
        self.hint_warp = bool(hint_warp)
        if mouth_guard is not None and not unet.config.reference_hint:
            raise ValueError("a mouth guard needs a renderer that takes the reference hint")
        self.mouth_guard = mouth_guard
        if reference_key_side is not None and reference_key_side < 1:
            raise ValueError(f"reference_key_side must be at least 1, got {reference_key_side}")
        # Each reference's tokens averaged down to this many a side before the attention reads them (reference_keys.py)
        self.reference_key_side = reference_key_side
        if scheduler not in SCHEDULERS:  # refused now, not at the first frame
            raise ValueError(f"unknown scheduler {scheduler!r}; choose from {', '.join(SCHEDULERS)}")

    @property
    def size(self) -> int:
        return int(self.unet.config.sample_size)

    @property
    def n_refs(self) -> int:
        return int(self.unet.config.n_refs)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def mask(self, batch: int) -> torch.Tensor:
        m = torch.from_numpy(lower_face_mask(self.size).copy())
        return m.to(self.device, self.dtype).expand(batch, 1, -1, -1)

    @torch.no_grad()
    def encode_references(self, refs: torch.Tensor, ref_landmarks: torch.Tensor) -> dict:
        """Reference tokens for (K, 3, S, S) refs shared by a video (or (B, K, ...) per frame): compute once per
        chunk and pass to ``__call__`` as ``reference_tokens``."""
        if refs.dim() == 4:
            refs, ref_landmarks = refs[None], ref_landmarks[None]
        tokens = self.unet.encode_references(refs.to(self.device, self.dtype), ref_landmarks.to(self.device))
        return self._pooled(tokens, refs.shape[1])

    @torch.no_grad()
    def encode_reference_pool(self, crops: torch.Tensor, landmarks: torch.Tensor) -> dict:
        """(P, 3, S, S) candidate references encoded once per video; pick per frame with ``gather_references``."""
        tokens = self.unet.encode_reference_pool(crops.to(self.device, self.dtype), landmarks.to(self.device))
        return self._pooled(tokens, 1)

    def _pooled(self, tokens: dict, refs_per_item: int) -> dict:
        if self.reference_key_side is None:
            return tokens
        return pool_reference_tokens(tokens, refs_per_item, self.reference_key_side)

    def gather_references(self, pool_tokens: dict, order: torch.Tensor) -> dict:
        """Reference tokens for (B, K) indices into the pool: the same as encoding those crops per frame."""
        return self.unet.gather_references(pool_tokens, order.to(self.device))

    @torch.no_grad()
    def __call__(
        self,
        crops: torch.Tensor,
        landmarks: torch.Tensor,
        refs: torch.Tensor | None = None,
        ref_landmarks: torch.Tensor | None = None,
        *,
        reference_tokens: dict | None = None,
        steps: int = 8,
        seed: int = 0,
        guidance: float = 1.0,
        scheduler: str | None = None,
        blend: bool = True,
        hint_index: torch.Tensor | None = None,
        hint_read: torch.Tensor | None = None,
        counts: dict[str, int] | None = None,
    ) -> torch.Tensor:
        """Redraw the lower face of ``crops`` (B, 3, S, S) to follow ``landmarks`` (B, 131, 2, unit crop).

        ``refs`` (K, 3, S, S) shared by the batch, or (B, K, 3, S, S) per frame, with their landmarks; the
        references' tokens may come precomputed (``reference_tokens``), the crops are still needed for the
        per-frame reference hint. Pixels outside the mask are returned as given. ``steps`` denoising steps.
        ``blend=False`` returns the network's drawing without the reference blend or the mouth guard (for evaluating
        the network).
        ``hint_index`` (B,): which reference is each frame's hint, when the caller chose it (default: the one whose
        mouth shape is nearest the target's). ``hint_read`` (B, S, S, 2): with ``hint_index``, the hint warp's
        ``thin_plate_read`` from each hint's landmarks to the target's, when the caller computed it (the compositor
        reads the hint's full-resolution frame with it too). ``counts``: ``counts["network"]`` grows by the frames the
        network drew (the reference blend gives the others to the warped hint alone).
        """
        b = crops.shape[0]
        device, dtype = self.device, self.dtype
        crops = crops.to(device, dtype)
        landmarks = landmarks.to(device, torch.float32)
        if reference_tokens is None:
            reference_tokens = self.encode_references(refs, ref_landmarks)
        mask = self.mask(b)
        masked = crops * (1 - mask)
        hint = None
        if self.unet.config.reference_hint:
            if refs is None or ref_landmarks is None:
                raise ValueError("this renderer needs the reference crops and landmarks (refs, ref_landmarks)")
            if refs.dim() == 4:
                refs, ref_landmarks = refs[None].expand(b, -1, -1, -1, -1), ref_landmarks[None].expand(b, -1, -1, -1)
            hint, ref_landmarks = reference_hint(  # the hint, and the blend's paste
                refs.to(device, dtype), ref_landmarks, landmarks, warp=self.hint_warp, index=hint_index, read=hint_read
            )
        mismatch = drawn = None
        if blend and self.reference_blend is not None and hint is not None:
            mismatch = reference_mismatch(ref_landmarks, landmarks)
            draws = self._draws(mismatch)
            if draws is not None:
                drawn = draws.nonzero().flatten()
        if counts is not None:
            counts["network"] = counts.get("network", 0) + (b if drawn is None else len(drawn))
        if drawn is None:
            x = self._sample(masked, mask, landmarks, reference_tokens, hint, steps, seed, guidance, scheduler)
        else:
            x = hint.clone()
            if len(drawn):
                tokens = {k: v if v.shape[0] == 1 else v[drawn] for k, v in reference_tokens.items()}
                x[drawn] = self._sample(
                    masked[drawn], mask[drawn], landmarks[drawn], tokens, hint[drawn], steps, seed, guidance, scheduler
                )
        if mismatch is not None:
            x = blend_with_paste(x, hint, mismatch, self.reference_blend)
        if blend and self.mouth_guard is not None and hint is not None:
            if drawn is None:
                x = self.mouth_guard(x, hint, landmarks)
            elif len(drawn):  # the frames pasted alone are the hint already: nothing to guard
                x[drawn] = self.mouth_guard(x[drawn], hint[drawn], landmarks[drawn])
        return (masked + mask * x).float()

    def network_draws(self, hint_landmarks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor | None:
        """(B,) bool: which frames the network draws when hinted with references of (B, 1, 131, 2)
        ``hint_landmarks`` (the others get their warped hint alone, by the reference blend); None where it draws
        every frame."""
        if self.reference_blend is None or not self.unet.config.reference_hint:
            return None
        return self._draws(reference_mismatch(hint_landmarks.to(self.device), landmarks.to(self.device)))

    def _draws(self, mismatch: torch.Tensor) -> torch.Tensor | None:
        if self.reference_blend is None or self.reference_blend.edge != 0:
            return None
        # Frames whose nearest reference already shows the target mouth get the paste alone (blend weight 0): the
        # network's drawing would be thrown away, so it is not drawn.
        return self.reference_blend.weights(mismatch) > 0

    def _sample(
        self,
        masked: torch.Tensor,
        mask: torch.Tensor,
        landmarks: torch.Tensor,
        reference_tokens: dict,
        hint: torch.Tensor | None,
        steps: int,
        seed: int,
        guidance: float,
        scheduler: str | None,
    ) -> torch.Tensor:
        """The sampler's loop: (B, 3, S, S) drawings in [-1, 1]. Each row depends on its own inputs only."""
        b, device, dtype = masked.shape[0], self.device, self.dtype
        name = scheduler or self.scheduler_name
        if one_step_is_the_estimate(name, steps, self.unet.config.prediction_type):
            timesteps = torch.tensor([TRAIN_SCHEDULE["num_train_timesteps"] - 1], device=device)  # "trailing"
            sched, noise_sigma = None, 1.0
        else:
            sched = make_scheduler(name, self.unet.config.prediction_type)
            sched.set_timesteps(steps, device=device)
            timesteps, noise_sigma = sched.timesteps, sched.init_noise_sigma
        x = initial_noise(self.size, seed, device, dtype).expand(b, -1, -1, -1) * noise_sigma
        guided = guidance != 1.0
        if guided:  # the landmark-free branch runs in the same batch, its rows second
            drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(device)
            tokens = {k: v if v.shape[0] == 1 else torch.cat([v, v]) for k, v in reference_tokens.items()}
            cond = self.unet.condition(
                torch.cat([masked, masked]),
                torch.cat([mask, mask]),
                torch.cat([landmarks, landmarks]),
                tokens,
                None if hint is None else torch.cat([hint, hint]),
                drop,
            )
        else:
            cond = self.unet.condition(masked, mask, landmarks, reference_tokens, hint)
        for t in timesteps:
            if guided:
                cond_out, uncond_out = self.unet.denoise(torch.cat([x, x]), t, cond).chunk(2)
                out = uncond_out + guidance * (cond_out - uncond_out)
            else:
                out = self.unet.denoise(x, t, cond)
            x = out if sched is None else sched.step(out, t, x).prev_sample
        return x.clamp(-1, 1)

    def save_pretrained(
        self, folder: str | Path, *, dtype: torch.dtype | None = None, max_shard_mib: float | None = None
    ) -> None:
        """``max_shard_mib``: the weights in files of at most that size (diffusers' shards and their index), for
        a channel that carries files only so large (docs/GPU.md)."""
        folder = Path(folder)
        unet = self.unet if dtype is None else copy.deepcopy(self.unet).to(dtype)  # .to() is in place
        # The limit counts tensor bytes; a shard's file adds its header (names, shapes: a few KiB).
        limit = 0 if max_shard_mib is None else int(max_shard_mib * (1 << 20))
        shard = {"max_shard_size": max(limit - (64 << 10), limit // 2)} if limit else {}
        unet.save_pretrained(folder / "unet", safe_serialization=True, **shard)
        settings = {"scheduler": self.scheduler_name, "steps": self.default_steps}
        if self.reference_blend is not None:
            settings["reference_blend"] = self.reference_blend.to_dict()
        if self.hint_warp:
            settings["hint_warp"] = True
        if self.mouth_guard is not None:
            settings["mouth_guard"] = self.mouth_guard.to_dict()
        if self.reference_key_side is not None:
            settings["reference_key_side"] = self.reference_key_side
        (folder / PIPELINE_CONFIG).write_text(json.dumps(settings, indent=1) + "\n")

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> FaceRenderer:
        folder = Path(folder)
        return cls.with_settings(RendererUNet.load(folder / "unet", dtype, device), folder)

    @classmethod
    def with_settings(cls, unet: RendererUNet, folder: str | Path) -> FaceRenderer:
        """``unet`` (or another runtime's stand-in for it) with the sampler settings of ``folder``'s renderer.json."""
        settings = json.loads((Path(folder) / PIPELINE_CONFIG).read_text())
        blend, guard = settings.get("reference_blend"), settings.get("mouth_guard")
        return cls(
            unet,
            settings.get("scheduler", "dpm++"),
            int(settings.get("steps", 8)),
            ReferenceBlend.from_dict(blend) if blend is not None else None,
            bool(settings.get("hint_warp", False)),
            MouthGuard.from_dict(guard) if guard is not None else None,
            int(settings["reference_key_side"]) if settings.get("reference_key_side") is not None else None,
        )
