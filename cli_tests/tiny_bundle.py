"""A tiny named weights bundle (random landmark completer + 32 px renderer) in a manifest-checked weights folder:
the pipeline's tests run the real code paths in seconds, demucs-style."""

from __future__ import annotations

from pathlib import Path

import torch

from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.render import FaceRenderer
from dubber.render.reference_blend import ReferenceBlend
from dubber.weights import register_model

TINY_BUNDLE = "tiny"
TINY_BLEND = ReferenceBlend(0.0, 0.05)  # partial: both the network and the paste show


def make_tiny_weights(root: Path, name: str = TINY_BUNDLE, seed: int = 0) -> Path:
    """Write ``root/<name>/{landmarks,renderer}`` with manifest entries; returns ``root``."""
    torch.manual_seed(seed)
    landmarks = LandmarkCompleter(LandmarkCompleterConfig.named("tiny"))
    unet = RendererUNet(**renderer_config("tiny"))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # the output layers start at zero; give them weights so the render changes pixels
        for pname, p in unet.named_parameters():
            if "conv_out" in pname or "proj_out" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    info = {"training": {"data": "none: random weights for tests"}}
    landmarks.save_pretrained(root / name / "landmarks")
    register_model(f"{name}/landmarks", root / name / "landmarks", info, root)
    # A reference blend like the shipped renderer's, so the pipeline's tests run that path too.
    FaceRenderer(unet, reference_blend=TINY_BLEND).save_pretrained(root / name / "renderer")
    register_model(f"{name}/renderer", root / name / "renderer", info, root)
    return root
