"""A pretrained speech encoder: the encoder half of OpenAI's Whisper, used as a speaker-independent audio front end.

The landmark completer learns audio -> mouth from the shared data's 28 speakers, which is too few voices to learn what
a sound is apart from who says it. Whisper's encoder was trained on 680,000 hours of many thousands of voices to
tell sounds apart, so its features carry the phonetic content with much less of the speaker in them; MuseTalk and
LatentSync drive their mouths from the same features. Here only the encoder runs (no decoding, no text).

Layout as in Whisper: two GELU convolutions over the 80-band log-mel of 30 s (the second halves the rate to 50
steps/s), fixed sinusoidal positions, pre-norm transformer blocks, a final LayerNorm. ``scripts/convert_whisper.py``
writes the weights from a CTranslate2 export of Whisper into this module's safetensors layout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dubber.models.model_folder import load_weights, read_config, save_model_folder

DEFAULT_SPEECH_ENCODER = "whisper-tiny.en"  # the one shipped in weights/speech/
DEFAULT_SPEECH_LAYER = 3  # the features the shipped speech completer reads: after block 3 of 4


def feature_name(encoder: str, layer: int = 0) -> str:
    """The name of one encoder's features at one layer (0: its output), as the prepared cache files them."""
    return encoder if layer == 0 else f"{encoder}.layer{layer}"


@dataclass(frozen=True)
class SpeechEncoderConfig:
    n_mels: int = 80
    d_model: int = 384
    n_layers: int = 4
    n_heads: int = 6
    n_ctx: int = 1500  # output steps of one 30 s chunk (50 per second)
    source: str = "whisper-tiny.en"

    @classmethod
    def named(cls, name: str) -> SpeechEncoderConfig:
        presets = {
            "tiny-test": cls(d_model=16, n_layers=1, n_heads=2, source="tiny-test"),
            "whisper-tiny.en": cls(),
        }
        if name not in presets:
            raise ValueError(f"unknown speech encoder config {name!r}; choose from {sorted(presets)}")
        return presets[name]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpeechEncoderConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def whisper_positions(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed positional table: sines then cosines over geometric timescales from 1 to 10,000."""
    increment = math.log(10000.0) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(d)
        self.attn_qkv = nn.Linear(d, 3 * d)  # query, key, value stacked (Whisper's key has no bias: it stays 0)
        self.attn_out = nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn_in = nn.Linear(d, 4 * d)
        self.ffn_out = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.attn_qkv(self.attn_norm(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.attn_out(att)
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))


class SpeechEncoder(nn.Module):
    """(B, 80, 2 * n_ctx) Whisper log-mel -> (B, n_ctx, d_model) features at 50 steps per second."""

    def __init__(self, config: SpeechEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SpeechEncoderConfig()
        d = cfg.d_model
        self.conv1 = nn.Conv1d(cfg.n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positions", whisper_positions(cfg.n_ctx, d), persistent=False)
        self.blocks = nn.ModuleList(_Block(d, cfg.n_heads) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, mel: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``layer`` k > 0: the hidden states after block k instead of the normalised output (0). Whisper's middle
        and upper blocks hold the phonetic content; its last block is shaped for its text decoder."""
        if not 0 <= layer <= len(self.blocks):
            raise ValueError(f"layer {layer} of a {len(self.blocks)}-block encoder")
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        for block in self.blocks[: layer or len(self.blocks)]:
            x = block(x)
        return x if layer else self.norm(x)

    # -- save / load -------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        return save_model_folder(self, folder, {"model": "SpeechEncoder", **self.config.to_dict()}, dtype=dtype)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> SpeechEncoder:
        model = cls(SpeechEncoderConfig.from_dict(read_config(folder)))
        load_weights(model, folder)
        return model.to(device, dtype).eval()
