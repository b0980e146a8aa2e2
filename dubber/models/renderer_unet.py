"""The renderer's denoiser (docs/ARCHITECTURE.md §6): a UNet on diffusers' building blocks with TalkFormer conditioning.

Input: the noisy crop, the crop with its lower face masked out, and the mask (7 channels at S x S), pixel-unshuffled
by ``patch`` so that a CPU can train it. TalkFormer blocks sit at the 32/16/8 sides (``talk_sides``) in the down
path, the middle and the up path. Output: the diffusion target for the 3 colour channels (x0 for the shipped
configs). With ``hint_residual`` the network draws a correction to the reference paste (the masked crop with the
nearest reference's lower face) instead of the whole face, so the person's detail reaches the output at full
resolution rather than through the patch-4 bottleneck.
Saved with diffusers' ``save_pretrained`` (config.json + safetensors), loaded by ``RendererUNet.load``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from dubber.errors import WeightsError
from dubber.face.landmarks import N_POINTS
from dubber.models.diffusers_parts import (
    SAFETENSORS_WEIGHTS_NAME,
    ConfigMixin,
    Downsample2D,
    ModelMixin,
    ResnetBlock2D,
    TimestepEmbedding,
    Timesteps,
    Upsample2D,
    register_to_config,
)
from dubber.models.model_folder import CONFIG_NAME, first_line, unet_weight_files
from dubber.models.reference_choice import mouth_shape_distance
from dubber.models.talkformer import LandmarkTokens, ReferenceEncoder, ReferenceTokens, TalkFormerBlock
from dubber.models.upsample import supports, upsample_conv

# Named sizes. tiny: unit tests (seconds on a CPU); small: trainable on a 2-core CPU in about an hour; base: GPU.
RENDERER_CONFIGS: dict[str, dict] = {
    "tiny": dict(
        sample_size=32,
        patch=2,
        block_channels=(16, 32),
        layers_per_block=1,
        talk_sides=(16, 8),
        self_attention_sides=(8,),
        heads=2,
        landmark_dim=32,
        n_freqs=4,
        groups=8,
        n_refs=2,
        ref_side=8,
        hint_residual=True,
    ),
    "small": dict(
        sample_size=128,
        patch=4,
        block_channels=(64, 128, 192),
        layers_per_block=1,
        talk_sides=(32, 16, 8),
        self_attention_sides=(8,),
        heads=4,
        landmark_dim=128,
        n_freqs=8,
        groups=16,
        n_refs=3,
        ref_side=16,
        hint_residual=True,
    ),
    "base": dict(
        sample_size=128,
        patch=2,
        block_channels=(128, 192, 320, 448),
        layers_per_block=2,
        talk_sides=(32, 16, 8),
        self_attention_sides=(16, 8),
        heads=8,
        landmark_dim=256,
        n_freqs=10,
        groups=32,
        n_refs=4,
        ref_side=16,
        hint_residual=True,
    ),
}


class RendererUNet(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sample_size: int = 128,
        patch: int = 4,
        block_channels: tuple[int, ...] = (64, 128, 192),
        layers_per_block: int = 1,
        talk_sides: tuple[int, ...] = (32, 16, 8),
        self_attention_sides: tuple[int, ...] = (8,),
        heads: int = 4,
        landmark_dim: int = 128,
        n_freqs: int = 8,
        groups: int = 16,
        n_refs: int = 3,
        ref_side: int = 16,
        prediction_type: str = "sample",
        reference_hint: bool = True,
        hint_residual: bool = False,  # False for weights saved before it existed: they predict the whole face
    ) -> None:
        super().__init__()
        if hint_residual and not (reference_hint and prediction_type == "sample"):
            raise ValueError("hint_residual needs reference_hint and prediction_type 'sample' (x0)")
        self.patch = patch
        temb = block_channels[0] * 4
        self.time_proj = Timesteps(block_channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(block_channels[0], temb)
        self.landmarks = LandmarkTokens(N_POINTS, landmark_dim, n_freqs)
        # Classifier-free guidance drops the target's landmark tokens for these learned ones.
        self.null_landmarks = nn.Parameter(torch.zeros(N_POINTS, landmark_dim))
        sides = [sample_size // patch // 2**i for i in range(len(block_channels))]
        self.sides = sides
        self.ref_encoder = ReferenceEncoder(patch, tuple(block_channels), tuple(talk_sides), groups, sample_size)
        # Inputs: noisy crop, masked crop, mask and (reference_hint) the reference nearest the target's mouth shape.
        self.conv_in = nn.Conv2d((10 if reference_hint else 7) * patch * patch, block_channels[0], 3, padding=1)
        self.ref_tokens = nn.ModuleDict()

        def talk(ch: int, side: int) -> TalkFormerBlock | None:
            if side not in talk_sides:
                return None
            if str(side) not in self.ref_tokens:
                self.ref_tokens[str(side)] = ReferenceTokens(ch, min(ref_side, side), landmark_dim)
            return TalkFormerBlock(ch, side, landmark_dim, heads, groups, side in self_attention_sides)

        self.down_resnets = nn.ModuleList()
        self.down_talk = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_channels = [block_channels[0]]
        prev = block_channels[0]
        for i, (ch, side) in enumerate(zip(block_channels, sides, strict=True)):
            res, tf = nn.ModuleList(), nn.ModuleList()
            for _ in range(layers_per_block):
                res.append(ResnetBlock2D(in_channels=prev, out_channels=ch, temb_channels=temb, groups=groups))
                tf.append(talk(ch, side) or nn.Identity())
                prev = ch
                skip_channels.append(ch)
            self.down_resnets.append(res)
            self.down_talk.append(tf)
            last = i == len(block_channels) - 1
            self.downsamplers.append(
                nn.Identity() if last else Downsample2D(ch, use_conv=True, out_channels=ch, name="op")
            )
            if not last:
                skip_channels.append(ch)
        mid = block_channels[-1]
        self.mid_res1 = ResnetBlock2D(in_channels=mid, out_channels=mid, temb_channels=temb, groups=groups)
        self.mid_talk = talk(mid, sides[-1]) or nn.Identity()
        self.mid_res2 = ResnetBlock2D(in_channels=mid, out_channels=mid, temb_channels=temb, groups=groups)

        self.up_resnets = nn.ModuleList()
        self.up_talk = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        prev = mid
        for i in reversed(range(len(block_channels))):
            ch, side = block_channels[i], sides[i]
            res, tf = nn.ModuleList(), nn.ModuleList()
            for _ in range(layers_per_block + 1):
                skip = skip_channels.pop()
                res.append(ResnetBlock2D(in_channels=prev + skip, out_channels=ch, temb_channels=temb, groups=groups))
                tf.append(talk(ch, side) or nn.Identity())
                prev = ch
            self.up_resnets.append(res)
            self.up_talk.append(tf)
            self.upsamplers.append(nn.Identity() if i == 0 else Upsample2D(ch, use_conv=True, out_channels=ch))
        self.norm_out = nn.GroupNorm(groups, block_channels[0], eps=1e-6)
        self.conv_out = nn.Conv2d(block_channels[0], 3 * patch * patch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @classmethod
    def load(
        cls, folder: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
    ) -> RendererUNet:
        """The model ``save_pretrained`` wrote to ``folder`` (one safetensors file, or shards and their index) as
        diffusers' ``from_pretrained(folder, torch_dtype=dtype)`` loads it: the saved tensors in ``dtype``, the
        buffers the model makes itself as made, in eval mode, on ``device``; without diffusers' loading hooks and its
        ``to``, which import torch's compiler (dubber/models/diffusers_parts.py)."""
        folder = Path(folder)
        model = cls.from_config(cls.load_config(folder))
        state: dict[str, torch.Tensor] = {}
        for file in unet_weight_files(folder / SAFETENSORS_WEIGHTS_NAME):
            state.update(load_file(file))
        try:
            model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
        except RuntimeError as exc:
            fit = f"does not fit the model its {CONFIG_NAME} describes"
            raise WeightsError(f"{folder}: {fit} ({first_line(exc)})") from None
        return nn.Module.to(model, device).eval()

    def encode_references(self, refs: torch.Tensor, ref_landmarks: torch.Tensor) -> dict:
        """Reference features, computed once per video chunk and reused at every denoising step.

        refs: (B, K, 3, S, S) in [-1, 1]; ref_landmarks: (B, K, 131, 2) unit-crop coordinates.
        """
        b, k = refs.shape[:2]
        feats = self.ref_encoder(refs.flatten(0, 1))
        tags = self.landmarks(ref_landmarks.flatten(0, 1)).mean(1).reshape(b, k, -1)
        return {int(side): tok(feats[int(side)], tags, b) for side, tok in self.ref_tokens.items()}

    def encode_reference_pool(self, crops: torch.Tensor, landmarks: torch.Tensor) -> dict:
        """Each of P candidate reference crops encoded alone: {side: (P, r*r, C)}. ``gather_references`` then builds
        any frame's K-reference tokens from them without running the encoder again (every reference's tokens
        depend on that reference only)."""
        return self.encode_references(crops[:, None], landmarks[:, None])

    @staticmethod
    def gather_references(pool_tokens: dict, order: torch.Tensor) -> dict:
        """(B, K) indices into an ``encode_reference_pool`` -> what ``encode_references`` gives for those crops."""
        return {side: tokens[order].flatten(1, 2) for side, tokens in pool_tokens.items()}

    def landmark_tokens(self, landmarks: torch.Tensor | None, batch: int, drop: torch.Tensor | None = None):
        """(B, 131, dim) tokens; rows where ``drop`` is True (or all, without landmarks) get the null tokens."""
        null = self.null_landmarks.unsqueeze(0).expand(batch, -1, -1)
        if landmarks is None:
            return null
        tokens = self.landmarks(landmarks)
        if drop is not None:
            tokens = torch.where(drop[:, None, None], null.to(tokens.dtype), tokens)
        return tokens

    def condition(
        self,
        masked: torch.Tensor,
        mask: torch.Tensor,
        landmarks: torch.Tensor | None,
        reference_tokens: dict,
        hint: torch.Tensor | None = None,
        drop_landmarks: torch.Tensor | None = None,
    ) -> DenoiserConditioning:
        """Everything the denoiser computes from the conditioning alone, once for all the sampler's steps: the
        input conv's share of the masked crop, mask and hint, and every TalkFormer block's keys and values."""
        b = masked.shape[0]
        dtype = self.conv_in.weight.dtype
        inputs = [masked.to(dtype), mask.to(dtype)] + ([hint.to(dtype)] if self.config.reference_hint else [])
        input_share = self._input_conv(torch.cat(inputs, 1), slice(3 * self.patch**2, None), self.conv_in.bias)
        lmk = self.landmark_tokens(landmarks, b, drop_landmarks)
        key_values = {
            block: block.key_values(lmk, reference_tokens[block.side])
            for block in self.modules()
            if isinstance(block, TalkFormerBlock)
        }
        return DenoiserConditioning(input_share, key_values, masked, mask, hint)

    def denoise(self, sample: torch.Tensor, timestep: torch.Tensor | float, cond: DenoiserConditioning) -> torch.Tensor:
        """One denoiser evaluation of (B, 3, S, S) ``sample`` at ``timestep`` under ``cond`` (from ``condition``)."""
        b = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        x = self._input_conv(sample, slice(0, 3 * self.patch**2), None) + cond.input_share
        kv = cond.key_values
        skips = [x]
        for i, (res, tf, down) in enumerate(zip(self.down_resnets, self.down_talk, self.downsamplers, strict=True)):
            for r, block in zip(res, tf, strict=True):
                x = r(x, emb)
                x = block(x, key_values=kv[block]) if block in kv else x
                skips.append(x)
            if i < len(self.downsamplers) - 1:
                x = down(x)
                skips.append(x)
        x = self.mid_res1(x, emb)
        x = self.mid_talk(x, key_values=kv[self.mid_talk]) if self.mid_talk in kv else x
        x = self.mid_res2(x, emb)
        for res, tf, up in zip(self.up_resnets, self.up_talk, self.upsamplers, strict=True):
            for r, block in zip(res, tf, strict=True):
                x = r(torch.cat([x, skips.pop()], 1), emb)
                x = block(x, key_values=kv[block]) if block in kv else x
            x = upsample_conv(up, x) if supports(up) else up(x)
        x = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(x))), self.patch)
        if self.config.hint_residual:
            mask = cond.mask.to(x.dtype)
            x = x + cond.masked.to(x.dtype) * (1 - mask) + cond.hint.to(x.dtype) * mask
        return x

    def _input_conv(self, x: torch.Tensor, channels: slice, bias: torch.Tensor | None) -> torch.Tensor:
        """``conv_in`` over some of its input channels (the noisy sample's come first): a conv is a sum over its
        input channels, so the conditioning's share is computed once per batch and the sample's at every step."""
        weight = self.conv_in.weight[:, channels]
        return F.conv2d(F.pixel_unshuffle(x, self.patch), weight, bias, padding=self.conv_in.padding)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        masked: torch.Tensor,
        mask: torch.Tensor,
        landmarks: torch.Tensor | None,
        refs: torch.Tensor | None = None,
        ref_landmarks: torch.Tensor | None = None,
        *,
        reference_tokens: dict | None = None,
        drop_landmarks: torch.Tensor | None = None,
        hint: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sample, masked: (B, 3, S, S) in [-1, 1]; mask: (B, 1, S, S), 1 where the face is redrawn;
        landmarks: (B, 131, 2) target points or None (unconditional); refs/ref_landmarks or precomputed
        ``reference_tokens`` from ``encode_references``; ``hint`` the reference crop fed to the input (default:
        the one of ``refs`` nearest ``landmarks``). One step; samplers call ``condition`` once and ``denoise``
        per step instead."""
        if self.config.reference_hint and hint is None:
            if refs is None:
                raise ValueError("this renderer reads a reference hint: pass refs or hint")
            hint = nearest_reference(refs, ref_landmarks, landmarks)
        if reference_tokens is None:
            reference_tokens = self.encode_references(refs, ref_landmarks)
        cond = self.condition(masked, mask.to(sample.dtype), landmarks, reference_tokens, hint, drop_landmarks)
        return self.denoise(sample, timestep, cond)


@dataclass
class DenoiserConditioning:
    """What ``RendererUNet.condition`` computes once per batch of frames and every denoising step reuses."""

    input_share: torch.Tensor  # the input conv applied to the masked crop, mask and hint (bias included)
    key_values: dict  # TalkFormerBlock -> its cross-attentions' keys and values
    masked: torch.Tensor
    mask: torch.Tensor
    hint: torch.Tensor | None


def nearest_reference_index(ref_landmarks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(B,) per frame, the reference of (B, K, 131, 2) ``ref_landmarks`` whose mouth shape is nearest the target's
    (``mouth_shape_distance``: lip points about their centre). Shape, not position: where the mouth sits in the crop
    follows the head's pose, its shape follows the speech (docs/DESIGN-NOTES.md, "References per frame")."""
    with torch.no_grad():
        return mouth_shape_distance(ref_landmarks, landmarks).argmin(dim=1)


def nearest_reference(refs: torch.Tensor, ref_landmarks: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
    """Per frame, the reference crop whose mouth shape is nearest the target's: (B, K, 3, S, S) -> (B, 3, S, S). It
    gives the network the person's look with about the right mouth to start from (IP_LAP's reference selection); the
    TalkFormer attention does the rest. Without landmarks (unconditional) the first reference."""
    if landmarks is None:
        return refs[:, 0]
    pick = nearest_reference_index(ref_landmarks, landmarks)
    return refs[torch.arange(refs.shape[0], device=refs.device), pick]


def renderer_config(name: str) -> dict:
    if name not in RENDERER_CONFIGS:
        raise ValueError(f"unknown renderer config {name!r}; choose from {sorted(RENDERER_CONFIGS)}")
    return dict(RENDERER_CONFIGS[name])
