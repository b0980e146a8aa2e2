"""The landmark completer (docs/ARCHITECTURE.md §5, after IP_LAP): audio + reference landmarks + pose -> lip and jaw
landmarks.

Tokens: R reference landmark sets (all 131 points) | T audio tokens (a CNN per frame's audio window) | T pose tokens
(a 1-D CNN over each frame's 74 upper-face points), with modality embeddings and sinusoidal time positions, through
a transformer encoder. The 40 lip points are read from the audio tokens and the 17 jaw points from the pose tokens,
as offsets from the mean of the references' lip and jaw shapes (``base="mean"``) or from that mean carried to each
frame's head pose (``base="pose-affine"``, dubber.models.reference_warp): an untrained head predicts the speaker's
shape, which is the baseline every prediction must beat. Coordinates are unit-crop numbers throughout, so gradients flow
from anything downstream (the renderer) back into this model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from dubber.face.landmarks import JAW, LIP_INDICES, N_POINTS, N_POSE
from dubber.models.model_folder import load_weights, read_config, save_model_folder
from dubber.models.reference_warp import warp_references

N_JAW = len(JAW)
N_LIPS = len(LIP_INDICES)

AUDIO_INPUTS = ("mel", "speech", "mel+speech")
# What the predicted offsets are added to: the references' mean lip/jaw shape, or each reference carried to the
# frame's head pose by an affine map of the upper face (dubber.models.reference_warp), then averaged.
BASES = ("mean", "pose-affine")
MEL_BANDS = 80
# Config keys of weights saved before their renaming (the shipped config.json files use them).
_RENAMED = {"n_mels": "n_features", "mel_steps": "audio_steps"}


@dataclass(frozen=True)
class LandmarkCompleterConfig:
    d_model: int = 512
    n_layers: int = 4
    n_heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1
    n_refs: int = 15
    window: int = 5  # T frames predicted together
    audio_steps: int = 16  # steps of each frame's audio window (16 mel steps or 10 speech steps: 0.2 s)
    n_features: int = 80  # features per step: mel bands, the speech encoder's width, or both
    audio_channels: int = 256  # width of the audio CNN
    # "mel" (log-mel windows), "speech" (the speech encoder's features, dubber.audio.speech), or "mel+speech" (each
    # mel step's 80 bands followed by the speech features at that step's time)
    audio_input: str = "mel"
    speech_encoder: str = ""  # with speech: the encoder's name (weights/speech/<name>)
    speech_layer: int = 0  # ... and the layer its features come from (0: the encoder's output)
    base: str = "mean"  # one of BASES

    @classmethod
    def named(cls, name: str) -> LandmarkCompleterConfig:
        presets = {
            "tiny": cls(d_model=32, n_layers=1, n_heads=2, ff_dim=64, n_refs=4, audio_channels=16),
            "small": cls(d_model=192, n_layers=3, n_heads=4, ff_dim=768, audio_channels=128),
            "base": cls(),
        }
        if name not in presets:
            raise ValueError(f"unknown landmark completer config {name!r}; choose from {sorted(presets)}")
        return presets[name]

    def __post_init__(self) -> None:
        if self.audio_input not in AUDIO_INPUTS:
            raise ValueError(f"unknown audio input {self.audio_input!r}; choose from {AUDIO_INPUTS}")
        if self.base not in BASES:
            raise ValueError(f"unknown base {self.base!r}; choose from {BASES}")

    def with_speech_input(
        self, encoder: str, dims: int, steps: int, keep_mel: bool = False, layer: int = 0
    ) -> LandmarkCompleterConfig:
        """This config reading ``steps`` steps of ``dims`` features of the speech encoder ``encoder`` (at ``layer``)
        per frame; with ``keep_mel``, the mel windows with those features appended to every step (``steps``
        unused)."""
        if keep_mel:
            n = MEL_BANDS + dims
            return replace(self, audio_input="mel+speech", speech_encoder=encoder, speech_layer=layer, n_features=n)
        return replace(
            self, audio_input="speech", speech_encoder=encoder, speech_layer=layer, n_features=dims, audio_steps=steps
        )

    @property
    def mel_bands(self) -> int:
        """How many of the features per step are mel bands (the first ones)."""
        return 0 if self.audio_input == "speech" else MEL_BANDS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LandmarkCompleterConfig:
        names = {f.name for f in fields(cls)}
        renamed = {_RENAMED.get(k, k): v for k, v in d.items()}
        return cls(**{k: v for k, v in renamed.items() if k in names})


def _sinusoid(positions: int, dim: int) -> torch.Tensor:
    pos = torch.arange(positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(positions, dim)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


def _center(points: torch.Tensor) -> torch.Tensor:
    # Unit-crop coordinates live in ~[0.2, 0.8]: centre and widen them to about unit spread for the networks.
    return (points - 0.5) * 4.0


class AudioEncoder(nn.Module):
    """(B, steps, features) audio window -> (B, d) token: 1-D convolutions along time with the features (mel bands,
    speech features) as channels.

    IP_LAP uses Wav2Lip's 2-D mel CNN; along-time 1-D convolutions see the same 0.2 s window at a thirtieth of the
    cost, which is what lets the model train on a CPU.
    """

    def __init__(self, cfg: LandmarkCompleterConfig) -> None:
        super().__init__()
        c = cfg.audio_channels
        self.net = nn.Sequential(
            nn.Conv1d(cfg.n_features, c, 3, padding=1),
            nn.GroupNorm(8 if c % 8 == 0 else 1, c),
            nn.GELU(),
            nn.Conv1d(c, c, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Conv1d(c, 2 * c, 3, padding=1, stride=2),
            nn.GELU(),
        )
        self.out = nn.Linear(2 * c * ((cfg.audio_steps + 3) // 4), cfg.d_model)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(audio.transpose(1, 2)).flatten(1))


class PointsEncoder(nn.Module):
    """(B, N, 2) point set -> (B, d) token: a 1-D CNN along the point sequence, then a projection."""

    def __init__(self, n_points: int, d_model: int, width: int = 64) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(2, width, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(width, width, 3, padding=1, stride=2),
            nn.GELU(),
        )
        self.out = nn.Sequential(
            nn.Linear(width * ((n_points + 1) // 2), d_model), nn.GELU(), nn.Linear(d_model, d_model)
        )

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        # Centred in float32 first: half precision would round the raw coordinates (~0.5) to steps of up to 0.004.
        x = self.conv(_center(points.float()).to(self.conv[0].weight.dtype).transpose(1, 2))
        return self.out(x.flatten(1))


class LandmarkCompleter(nn.Module):
    def __init__(self, config: LandmarkCompleterConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or LandmarkCompleterConfig()
        d = cfg.d_model
        self.ref_encoder = PointsEncoder(N_POINTS, d)
        self.pose_encoder = PointsEncoder(N_POSE, d)
        self.mel_encoder = AudioEncoder(cfg)  # the name its saved weights carry
        self.modality = nn.Parameter(torch.zeros(3, d))
        nn.init.normal_(self.modality, std=0.02)
        self.register_buffer("time_pos", _sinusoid(cfg.window, d), persistent=False)
        layer = nn.TransformerEncoderLayer(
            d, cfg.n_heads, cfg.ff_dim, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.lip_head = nn.Linear(d, N_LIPS * 2)
        self.jaw_head = nn.Linear(d, N_JAW * 2)
        # Zero heads: training starts from the references' mean shape.
        for head in (self.lip_head, self.jaw_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, audio: torch.Tensor, pose: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        """audio (B, T, steps, features), pose (B, T, 74, 2), refs (B, R, 131, 2) -> content (B, T, 57, 2), float32.

        Content is ordered as ``CONTENT_INDICES``: jaw (17) then outer and inner lips (40). Inputs of any float
        dtype: the networks read them in their weights' dtype.
        """
        b, t = audio.shape[:2]
        audio_tok, pose_tok = self.encode_frames(audio.reshape(b * t, *audio.shape[2:]), pose.reshape(b * t, N_POSE, 2))
        d = self.config.d_model
        return self.decode(
            self.encode_references(refs), audio_tok.reshape(b, t, d), pose_tok.reshape(b, t, d), refs, pose
        )

    def encode_references(self, refs: torch.Tensor) -> torch.Tensor:
        """(B, R, 131, 2) reference point sets -> (B, R, d) tokens."""
        b, r = refs.shape[:2]
        return self.ref_encoder(refs.reshape(b * r, N_POINTS, 2)).reshape(b, r, -1) + self.modality[0]

    def encode_frames(self, audio: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per frame, (N, steps, features) audio windows and (N, 74, 2) pose points -> (N, d) audio and pose
        tokens (before the window's time position is added). Each frame's tokens depend on that frame alone, so a
        sequence's overlapping windows can share them (``dubber.models.landmark_sequence``)."""
        audio_tok = self.mel_encoder(audio.to(self.modality.dtype)) + self.modality[1]
        pose_tok = self.pose_encoder(pose) + self.modality[2]
        return audio_tok, pose_tok

    def decode(
        self,
        ref_tok: torch.Tensor,
        audio_tok: torch.Tensor,
        pose_tok: torch.Tensor,
        refs: torch.Tensor,
        pose: torch.Tensor,
    ) -> torch.Tensor:
        """Windows of tokens, ref_tok (B, R, d), audio_tok and pose_tok (B, T, d), with their refs (B, R, 131, 2)
        and pose (B, T, 74, 2) -> content (B, T, 57, 2), float32."""
        b, t = audio_tok.shape[:2]
        r = ref_tok.shape[1]
        pos = self.time_pos[:t]
        x = self.norm(self.encoder(torch.cat([ref_tok, audio_tok + pos, pose_tok + pos], dim=1)))
        lips = self.lip_head(x[:, r : r + t]).reshape(b, t, N_LIPS, 2)
        jaw = self.jaw_head(x[:, r + t :]).reshape(b, t, N_JAW, 2)
        # The base and the sum stay float32 whatever the weights' precision: only the learned offsets, a few
        # hundredths of the crop, carry half precision's rounding.
        refs, pose = refs.float(), pose.float()
        if self.config.base == "pose-affine":
            base = warp_references(refs[:, :, :N_POSE], refs[:, :, N_POSE:], pose)  # (B, T, 57, 2)
        else:
            base = refs[:, :, N_POSE:].mean(dim=1, keepdim=True)  # (B, 1, 57, 2) mean reference content
        # Offsets are predicted in the networks' widened units (x4) and brought back to crop units.
        return base + torch.cat([jaw, lips], dim=2).float() / 4.0

    # -- save / load -------------------------------------------------------------------------------------------
    def save_pretrained(
        self, folder: str | Path, *, dtype: torch.dtype | None = None, extra: dict | None = None
    ) -> Path:
        config = {"model": "LandmarkCompleter", **self.config.to_dict(), **(extra or {})}
        return save_model_folder(self, folder, config, dtype=dtype)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> LandmarkCompleter:
        model = cls(LandmarkCompleterConfig.from_dict(read_config(folder)))
        load_weights(model, folder)
        return model.to(device, dtype).eval()
