"""Several landmark completers whose predictions are averaged with fixed weights, saved as one model folder.

Why: a completer that hears the mel and one that hears a pretrained speech encoder's features err differently. On
the dev speakers never trained on, the mel completer places the mouth and jaw better (it leans on the pose and the
references), the speech completer follows the sound better (docs/LANDMARKS.md); their weighted mean keeps the first
one's landmark error and most of the second one's sync.

Folder layout: ``config.json`` (``{"model": "LandmarkEnsemble", "members": {"mel": 0.7, "speech": 0.3}}``) and one
completer folder per member, named as in ``members``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.model_folder import CONFIG_NAME

ENSEMBLE_MODEL = "LandmarkEnsemble"


@dataclass(frozen=True)
class EnsembleConfig:
    """What callers of a completer read from its config, for the ensemble as a whole."""

    n_refs: int
    window: int
    speech_encoder: str  # the encoder a member reads ("" when none does)
    speech_layer: int  # ... and the layer
    audio_input: str = "ensemble"


class LandmarkEnsemble(nn.Module):
    def __init__(self, members: dict[str, LandmarkCompleter], weights: dict[str, float]) -> None:
        super().__init__()
        if not members or set(members) != set(weights):
            raise ValueError("an ensemble needs one weight per member, and at least one member")
        total = float(sum(weights.values()))
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError("ensemble weights must be non-negative and not all zero")
        configs = [m.config for m in members.values()]
        if len({c.n_refs for c in configs}) > 1 or len({c.window for c in configs}) > 1:
            raise ValueError("ensemble members must share their number of references and their window")
        encoders = {(c.speech_encoder, c.speech_layer) for c in configs if c.audio_input != "mel"}
        if len(encoders) > 1:  # the pipeline computes one set of speech features for all members
            raise ValueError(f"ensemble members read different speech encoders or layers: {sorted(encoders)}")
        self.members = nn.ModuleDict(members)
        self.weights = {k: float(w) / total for k, w in weights.items()}
        encoder, layer = encoders.pop() if encoders else ("", 0)
        self.config = EnsembleConfig(configs[0].n_refs, configs[0].window, encoder, layer)

    def save_pretrained(self, folder: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, member in self.members.items():
            member.save_pretrained(folder / name, dtype=dtype)
        (folder / CONFIG_NAME).write_text(json.dumps({"model": ENSEMBLE_MODEL, "members": self.weights}, indent=1))
        return folder

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> LandmarkEnsemble:
        folder = Path(folder)
        weights = json.loads((folder / CONFIG_NAME).read_text())["members"]
        members = {
            name: LandmarkCompleter.from_pretrained(folder / name, device=device, dtype=dtype) for name in weights
        }
        return cls(members, weights).eval()


def is_ensemble_folder(folder: str | Path) -> bool:
    try:
        return json.loads((Path(folder) / CONFIG_NAME).read_text()).get("model") == ENSEMBLE_MODEL
    except (OSError, ValueError, AttributeError):
        return False
