"""The renderer's training loss: MSE on the redrawn region of the model's target (x0 for the shipped configs; v or
epsilon with Min-SNR weights), with landmark dropout for classifier-free guidance. Its random draws come from a
generator seeded per step, so a resumed run is exact."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dubber.models.renderer_unet import RendererUNet, nearest_reference_index
from dubber.render.face_mask import lower_face_mask
from dubber.render.hint_warp import thin_plate_warp


@dataclass(frozen=True)
class DiffusionLossConfig:
    outside_weight: float = 0.25  # the known region only needs copying: a small weight keeps it from drifting
    drop_landmarks: float = 0.1  # share of samples trained without landmarks (classifier-free guidance)
    min_snr_gamma: float = 5.0
    # Share of samples whose noise level is drawn from the top tenth of the schedule. A renderer sampled in one step
    # only ever runs at the noisiest timestep; uniform timesteps spend nine tenths of training on levels where the
    # noisy input already shows the answer. Drawn after every other draw, so 0 reproduces older runs exactly.
    high_noise_share: float = 0.0
    # The hint warped onto the target's landmarks (dubber/render/hint_warp.py), as a renderer.json with
    # ``hint_warp`` samples it: the network then learns to fill a stretched or squeezed mouth, not to move one.
    hint_warp: bool = False


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank)


def diffusion_loss(
    unet: RendererUNet,
    scheduler,
    batch: dict[str, torch.Tensor],
    cfg: DiffusionLossConfig,
    generator: torch.Generator,
    landmarks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """``landmarks`` overrides ``batch["landmarks"]`` (end-to-end training passes the completer's output)."""
    x0 = batch["target"]
    b, device = x0.shape[0], x0.device
    size = x0.shape[-1]
    noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(device)
    drop = (torch.rand(b, generator=generator) < cfg.drop_landmarks).to(device)
    mask = torch.from_numpy(lower_face_mask(size).copy()).to(device, x0.dtype).expand(b, 1, -1, -1)
    if cfg.high_noise_share > 0:
        total = scheduler.config.num_train_timesteps
        high = torch.randint(total - total // 10, total, (b,), generator=generator).to(device)
        pick = (torch.rand(b, generator=generator) < cfg.high_noise_share).to(device)
        t = torch.where(pick, high, t)
    xt = scheduler.add_noise(x0, noise, t)
    kind = scheduler.config.prediction_type
    target = scheduler.get_velocity(x0, noise, t) if kind == "v_prediction" else x0 if kind == "sample" else noise
    hint = None
    if cfg.hint_warp:
        targets = batch["landmarks"] if landmarks is None else landmarks
        pick = nearest_reference_index(batch["ref_landmarks"], targets)
        rows = torch.arange(b, device=device)
        hint = thin_plate_warp(batch["refs"][rows, pick], batch["ref_landmarks"][rows, pick], targets.detach())
    out = unet(
        xt,
        t,
        x0 * (1 - mask),
        mask,
        batch["landmarks"] if landmarks is None else landmarks,
        batch["refs"],
        batch["ref_landmarks"],
        drop_landmarks=drop,
        hint=hint,
    )
    weight_px = mask + cfg.outside_weight * (1 - mask)
    per_sample = ((out.float() - target.float()) ** 2 * weight_px).mean((1, 2, 3)) / weight_px.mean((1, 2, 3))
    alphas = scheduler.alphas_cumprod.to(device)[t]
    snr = alphas / (1 - alphas)
    if kind == "sample":
        w = torch.ones_like(snr)  # plain x0 MSE: every noise level counts as much as a clean picture error
    elif kind == "v_prediction":
        w = torch.clamp(snr, max=cfg.min_snr_gamma) / (snr + 1)
    else:
        w = torch.clamp(snr, max=cfg.min_snr_gamma) / snr
    loss = (per_sample * w).mean()
    return loss, {"mse": float(per_sample.detach().mean())}
