"""A tiny named weights bundle (random landmark completer + 32 px renderer) in a manifest-checked weights folder:
the pipeline's tests run the real code paths in seconds, demucs-style."""

from __future__ import annotations

from pathlib import Path

import torch

from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.models.speech_encoder import SpeechEncoder, SpeechEncoderConfig
from dubber.render import FaceRenderer
from dubber.render.mouth_guard import MouthGuard
from dubber.render.reference_blend import ReferenceBlend
from dubber.weights import register_model

TINY_BUNDLE = "tiny"
TINY_BLEND = ReferenceBlend(0.0, 0.05)  # partial: both the network and the paste show
TINY_GUARD = MouthGuard()  # as the shipped weights carry it


def moving_tiny_completer(seed: int | None = 0) -> LandmarkCompleter:
    """A random ``tiny`` completer whose plan moves with its audio and references (its weights nudged off their
    initialisation, so a comparison is not between constants); ``seed`` None: drawn from torch's generator as it
    stands (several in a row)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = LandmarkCompleter(LandmarkCompleterConfig.named("tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def make_tiny_speech_encoder(root: Path, seed: int = 0) -> SpeechEncoder:
    """A random ``tiny-test`` speech encoder registered as ``speech/tiny-test`` in the weights folder ``root``."""
    torch.manual_seed(seed)
    encoder = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    folder = root / "speech" / encoder.config.source
    encoder.save_pretrained(folder)
    register_model(f"speech/{encoder.config.source}", folder, {"origin": "random weights for tests"}, root)
    return encoder


def make_tiny_weights(
    root: Path,
    name: str = TINY_BUNDLE,
    seed: int = 0,
    speech: bool = False,
    keep_mel: bool = False,
    ensemble: bool = False,
    hearing: bool = False,
) -> Path:
    """Write ``root/<name>/{landmarks,renderer}`` with manifest entries; returns ``root``. ``speech``: the completer
    reads the features of a tiny random speech encoder, registered beside it (with ``keep_mel``, mel+speech);
    ``ensemble``: the landmarks are a 0.7 / 0.3 ensemble of a mel completer and such a speech completer, as shipped;
    ``hearing``: the completer's output heads get small random weights, so its lips and jaw follow the audio (else
    they start at zero and every audio gives the references' mean shape)."""
    config = LandmarkCompleterConfig.named("tiny")
    if speech or ensemble:
        encoder = make_tiny_speech_encoder(root, seed)
        speech_config = config.with_speech_input(encoder.config.source, encoder.config.d_model, 10, keep_mel, layer=1)
    torch.manual_seed(seed)
    if ensemble:
        members = {"mel": LandmarkCompleter(config), "speech": LandmarkCompleter(speech_config)}
        landmarks = LandmarkEnsemble(members, {"mel": 0.7, "speech": 0.3})
    else:
        landmarks = LandmarkCompleter(speech_config if speech else config)
    if hearing:
        heads = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            for pname, p in landmarks.named_parameters():
                if "_head." in pname:
                    p.copy_(torch.randn(p.shape, generator=heads) * 0.01)
    unet = RendererUNet(**renderer_config("tiny"))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # the output layers start at zero; give them weights so the render changes pixels
        for pname, p in unet.named_parameters():
            if "conv_out" in pname or "proj_out" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    info = {"training": {"data": "none: random weights for tests"}}
    landmarks.save_pretrained(root / name / "landmarks")
    register_model(f"{name}/landmarks", root / name / "landmarks", info, root)
    # A reference blend and a hint warp like the shipped renderer's, so the pipeline's tests run those paths too.
    FaceRenderer(unet, reference_blend=TINY_BLEND, hint_warp=True, mouth_guard=TINY_GUARD).save_pretrained(
        root / name / "renderer"
    )
    register_model(f"{name}/renderer", root / name / "renderer", info, root)
    return root
