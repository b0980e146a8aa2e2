"""The shipped checkpoints: ``weights/manifest.json`` lists every file with its sha256 and size, what trained it
and how it measured. Loading re-checks the checksums (hashed in 1 MiB chunks) and says what is wrong.

``DUB_WEIGHTS`` names another weights folder (same layout: ``manifest.json`` + ``<bundle>/<component>/``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dubber.errors import InputError, WeightsError
from dubber.log import get_logger

log = get_logger("weights")

MANIFEST = "manifest.json"
DEFAULT_BUNDLE = "default"


def weights_root() -> Path:
    """``DUB_WEIGHTS``; else the ``weights/`` folder of the source tree dubber runs from; else the installed package
    ``dubber_weights`` (what a wheel carries)."""
    env = os.environ.get("DUB_WEIGHTS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if (checkout / MANIFEST).is_file():
        return checkout
    try:
        import dubber_weights
    except ImportError:
        return checkout  # read_manifest then says that no manifest is there
    return Path(dubber_weights.__file__).resolve().parent


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(root: Path | None = None) -> dict:
    root = root or weights_root()
    path = root / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path}: no weights manifest (set DUB_WEIGHTS to a weights folder)") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable weights manifest ({exc})") from None


@dataclass
class FileCheck:
    path: str
    ok: bool
    problem: str = ""


def verify_entry(name: str, root: Path | None = None, manifest: dict | None = None) -> list[FileCheck]:
    root = root or weights_root()
    manifest = manifest or read_manifest(root)
    entry = manifest.get("models", {}).get(name)
    if entry is None:
        raise WeightsError(
            f"{root / MANIFEST}: no model named {name!r} (have: {', '.join(manifest.get('models', {}))})"
        )
    checks = []
    for rel, meta in entry["files"].items():
        p = root / rel
        if not p.is_file():
            checks.append(FileCheck(rel, False, "missing"))
        elif p.stat().st_size != meta["size"]:
            checks.append(FileCheck(rel, False, f"size {p.stat().st_size} != {meta['size']} in the manifest"))
        elif sha256_of(p) != meta["sha256"]:
            checks.append(FileCheck(rel, False, "sha256 does not match the manifest (damaged or replaced)"))
        else:
            checks.append(FileCheck(rel, True))
    return checks


def verified_folder(name: str, root: Path | None = None) -> Path:
    """The folder of manifest model ``name`` after checking every file; raises WeightsError naming the bad file."""
    root = root or weights_root()
    manifest = read_manifest(root)
    bad = [c for c in verify_entry(name, root, manifest) if not c.ok]
    if bad:
        raise WeightsError(f"{root / bad[0].path}: {bad[0].problem}")
    return root / manifest["models"][name]["folder"]


def register_model(name: str, folder: Path, info: dict, root: Path | None = None) -> dict:
    """Add or replace manifest entry ``name`` for the files in ``folder`` (inside ``root``)."""
    root = root or weights_root()
    try:
        manifest = read_manifest(root)
    except WeightsError:
        manifest = {"format": 1, "models": {}}
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[f.relative_to(root).as_posix()] = {"sha256": sha256_of(f), "size": f.stat().st_size}
    entry = {"folder": folder.relative_to(root).as_posix(), "files": files, **info}
    manifest.setdefault("models", {})[name] = entry
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return entry


LANDMARKS_MODEL = "default/landmarks"


def load_landmark_model(path: str | Path | None = None, *, device: str = "cpu", dtype=None):
    """A LandmarkCompleter (or LandmarkEnsemble) from a folder, or the shipped default (checksum-verified) when
    ``path`` is None; its weights in ``dtype`` (default float32)."""
    import torch

    from dubber.models.landmark_completer import LandmarkCompleter
    from dubber.models.landmark_ensemble import LandmarkEnsemble, is_ensemble_folder
    from dubber.models.model_folder import CONFIG_NAME

    folder = verified_folder(LANDMARKS_MODEL) if path is None else Path(path)
    if not (folder / CONFIG_NAME).is_file():
        raise InputError(folder, f"not a model folder (no {CONFIG_NAME})")
    try:
        model_class = LandmarkEnsemble if is_ensemble_folder(folder) else LandmarkCompleter
        return model_class.from_pretrained(folder, device=device, dtype=dtype or torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise WeightsError(f"{folder}: cannot load the landmark model ({exc})") from None


SPEECH_MODELS = "speech"  # weights/speech/<name>/: pretrained speech encoders, shared by every bundle


def load_speech_encoder(name: str, path: str | Path | None = None, *, device: str = "cpu", dtype=None):
    """The speech encoder ``name`` from ``path``, or the shipped one (checksum-verified) when ``path`` is None; its
    weights in ``dtype`` (default float32)."""
    import torch

    from dubber.models.model_folder import CONFIG_NAME
    from dubber.models.speech_encoder import SpeechEncoder

    folder = verified_folder(f"{SPEECH_MODELS}/{name}") if path is None else Path(path)
    if not (folder / CONFIG_NAME).is_file():
        raise InputError(folder, f"not a speech encoder folder (no {CONFIG_NAME})")
    try:
        encoder = SpeechEncoder.from_pretrained(folder, device=device, dtype=dtype or torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{folder}: cannot load the speech encoder ({exc})") from None
    if encoder.config.source != name:
        raise WeightsError(f"{folder}: holds speech encoder {encoder.config.source!r}, not {name!r}")
    return encoder


RENDERER_MODEL = "default/renderer"


def load_renderer(path: str | Path | None = None, *, device: str = "cpu", dtype=None):
    """A FaceRenderer from a folder (``renderer.json`` + ``unet/``), or the shipped default (checksum-verified)."""
    import torch

    from dubber.models.model_folder import check_safetensors, unet_weight_files
    from dubber.render.renderer_pipeline import PIPELINE_CONFIG, UNET_WEIGHTS, FaceRenderer

    folder = verified_folder(RENDERER_MODEL) if path is None else Path(path)
    if not (folder / PIPELINE_CONFIG).is_file():
        raise InputError(folder, f"not a renderer folder (no {PIPELINE_CONFIG})")
    for file in unet_weight_files(folder / UNET_WEIGHTS):
        check_safetensors(file)
    try:
        return FaceRenderer.from_pretrained(folder, device=device, dtype=dtype or torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise WeightsError(f"{folder}: cannot load the renderer ({exc})") from None


def verify_folder(folder: Path) -> bool:
    """Check a model folder against the manifest beside it (``folder/manifest.json``) or above it (a bundle inside a
    weights folder): True when one lists its files and they all match; raises WeightsError naming a bad file."""
    inside = folder.resolve()
    for root in (folder, folder.parent):
        if not (root / MANIFEST).is_file():
            continue
        manifest = read_manifest(root)
        names = [
            n for n, e in manifest.get("models", {}).items() if (root / e["folder"]).resolve().is_relative_to(inside)
        ]
        for name in names:
            bad = [c for c in verify_entry(name, root, manifest) if not c.ok]
            if bad:
                raise WeightsError(f"{root / bad[0].path}: {bad[0].problem}")
        if names:
            return True
    log.debug("%s: no manifest lists these weights; loaded without a checksum check", folder)
    return False


@dataclass
class Bundle:
    """The folders of one landmark completer + renderer pair, and where they came from."""

    name: str
    landmarks: Path
    renderer: Path
    verified: bool  # checked against a manifest's sha256s


def resolve_bundle(path_or_name: str | Path = DEFAULT_BUNDLE) -> Bundle:
    """A bundle by manifest name (``default``, or any ``<name>`` with ``<name>/landmarks`` and ``<name>/renderer``
    entries in the weights folder), checksum-verified; or a folder holding ``landmarks/`` and ``renderer/`` (a run's
    ``model/`` folder), loaded as it is."""
    folder = Path(path_or_name)
    if folder.is_dir() and (folder / "landmarks").is_dir() and (folder / "renderer").is_dir():
        return Bundle(folder.name, folder / "landmarks", folder / "renderer", verified=verify_folder(folder))
    name = str(path_or_name)
    root = weights_root()
    models = read_manifest(root).get("models", {})
    if f"{name}/landmarks" not in models or f"{name}/renderer" not in models:
        if folder.exists() or "/" in name or "\\" in name:
            raise InputError(folder, "not a weights folder (needs landmarks/ and renderer/ subfolders)")
        bundles = sorted({k.split("/")[0] for k in models if k.endswith("/renderer")})
        raise InputError(None, f"no weights named {name!r} in {root / MANIFEST} (have: {', '.join(bundles)})")
    return Bundle(name, verified_folder(f"{name}/landmarks", root), verified_folder(f"{name}/renderer", root), True)
