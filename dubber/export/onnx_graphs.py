"""The torch modules that ``dub export onnx`` traces: each model's inference entry points with plain tensor inputs
and outputs (ONNX graphs take no dicts or None), and the names their inputs and outputs carry.

The renderer is split as its sampler uses it: reference tokens once per video pool, the conditioning once per batch
of frames, the denoiser once per sampler step (``RendererUNet.encode_reference_pool``, ``condition``, ``denoise``).
"""

from __future__ import annotations

import torch
from torch import nn

from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.renderer_unet import DenoiserConditioning, RendererUNet
from dubber.models.speech_encoder import SpeechEncoder
from dubber.models.talkformer import TalkFormerBlock


def talk_blocks(unet: RendererUNet) -> list[TalkFormerBlock]:
    """The TalkFormer blocks in module order: the order their keys and values are passed between graphs."""
    return [m for m in unet.modules() if isinstance(m, TalkFormerBlock)]


def token_sides(unet: RendererUNet) -> list[int]:
    return [int(side) for side in unet.ref_tokens]


class CompleterGraph(nn.Module):
    """(audio, pose, refs) -> content: one completer (an ensemble exports one graph per member)."""

    inputs = ("audio", "pose", "refs")
    outputs = ("content",)

    def __init__(self, completer: LandmarkCompleter) -> None:
        super().__init__()
        self.completer = completer

    def forward(self, audio: torch.Tensor, pose: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        return self.completer(audio, pose, refs)


class SpeechGraph(nn.Module):
    """(B, 80, frames) log-mel -> the features of the layer the completers read."""

    inputs = ("mel",)
    outputs = ("features",)

    def __init__(self, encoder: SpeechEncoder, layer: int) -> None:
        super().__init__()
        self.encoder, self.layer = encoder, int(layer)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel, self.layer)


class ReferenceGraph(nn.Module):
    """(P, 3, S, S) crops and (P, 131, 2) landmarks -> one (P, r*r, C) token tensor per side."""

    inputs = ("crops", "landmarks")

    def __init__(self, unet: RendererUNet) -> None:
        super().__init__()
        self.unet = unet
        self.outputs = tuple(f"tokens_{side}" for side in token_sides(unet))

    def forward(self, crops: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tokens = self.unet.encode_reference_pool(crops, landmarks)
        return tuple(tokens[side] for side in token_sides(self.unet))


class ConditionGraph(nn.Module):
    """Masked crop, mask, target landmarks, hint, landmark drop flags and each side's gathered reference tokens ->
    the input conv's share and every TalkFormer block's keys and values."""

    def __init__(self, unet: RendererUNet) -> None:
        super().__init__()
        self.unet = unet
        self.hint = bool(unet.config.reference_hint)
        sides = token_sides(unet)
        self.inputs = ("masked", "mask", "landmarks", *(("hint",) if self.hint else ()), "drop") + tuple(
            f"tokens_{s}" for s in sides
        )
        self.outputs = ("input_share",) + tuple(f"kv_{i}_{j}" for i in range(len(talk_blocks(unet))) for j in range(4))

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.inputs, args, strict=True))
        tokens = {s: named[f"tokens_{s}"] for s in token_sides(self.unet)}
        cond = self.unet.condition(
            named["masked"], named["mask"], named["landmarks"], tokens, named.get("hint"), named["drop"]
        )
        return (cond.input_share, *(t for block in talk_blocks(self.unet) for t in cond.key_values[block]))


class DenoiseGraph(nn.Module):
    """One sampler step: the noisy sample and its timestep under a ``ConditionGraph``'s outputs -> the denoiser's
    output."""

    outputs = ("output",)

    def __init__(self, unet: RendererUNet) -> None:
        super().__init__()
        self.unet = unet
        self.hint = bool(unet.config.reference_hint)
        self.blocks = talk_blocks(unet)
        hint = ("hint",) if self.hint else ()
        kv = tuple(f"kv_{i}_{j}" for i in range(len(self.blocks)) for j in range(4))
        self.inputs = ("sample", "timestep", "input_share", "masked", "mask", *hint, *kv)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.inputs, args, strict=True))
        kv = {b: tuple(named[f"kv_{i}_{j}"] for j in range(4)) for i, b in enumerate(self.blocks)}
        cond = DenoiserConditioning(named["input_share"], kv, named["masked"], named["mask"], named.get("hint"))
        return self.unet.denoise(named["sample"], named["timestep"], cond)
