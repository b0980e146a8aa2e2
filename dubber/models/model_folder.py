"""A model folder: ``config.json`` (the model's name and its config fields) + ``model.safetensors``.

The landmark completer and the speech encoder are saved and loaded this way (the renderer's UNet uses diffusers').
Weights may be stored in a lower precision (``dtype``); they are loaded back as float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from dubber.errors import WeightsError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_model_folder(module: nn.Module, folder: str | Path, config: dict, *, dtype: torch.dtype | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().cpu()
        for k, v in module.state_dict().items()
    }
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=1))
    return folder


def read_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / CONFIG_NAME).read_text())


def load_weights(module: nn.Module, folder: str | Path) -> None:
    """Fill ``module`` with the folder's weights, as float32; a damaged file or one made for another config raises
    ``WeightsError`` naming it."""
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    try:
        state = load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing") from None
    except Exception as exc:  # noqa: BLE001 - safetensors' own error type is not importable from a stable place
        raise WeightsError(f"{path}: damaged, not a readable safetensors file ({first_line(exc)})") from None
    try:
        module.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not fit the model its {CONFIG_NAME} describes ({first_line(exc)})") from None


def check_safetensors(path: str | Path) -> None:
    """Read a safetensors file's header (not its data): a damaged one raises ``WeightsError`` naming it. For files
    another library loads (diffusers), whose own error would not name the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing") from None
    except Exception as exc:  # noqa: BLE001 - as in load_weights
        raise WeightsError(f"{path}: damaged, not a readable safetensors file ({first_line(exc)})") from None


def unet_weight_files(single: Path) -> list[Path]:
    """The UNet's weight files: ``single``, or the shards its index lists beside it (a renderer saved in shards,
    ``FaceRenderer.save_pretrained(max_shard_mib=...)``)."""
    index = single.with_name(single.name + ".index.json")
    if not single.is_file() and index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise WeightsError(f"{index}: not a readable shard index ({exc})") from None
        return [single.with_name(n) for n in names]
    return [single]


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
