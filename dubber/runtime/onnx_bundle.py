"""``--runtime onnx``: a bundle's models as onnxruntime sessions.

``--weights`` may name an export of ``dub export onnx`` (a folder with ``onnx_manifest.json``), or a bundle as for the
torch runtime, which is then exported once into the cache folder (``<cache>/onnx/<key>``, the key made from the
bundle's file checksums, the opset and the torch version) and reused by later dubs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dubber.errors import InputError, WeightsError
from dubber.export.onnx_export import FORMAT, MANIFEST_NAME, OPSET, export_onnx, folder_digest
from dubber.log import get_logger
from dubber.models.landmark_completer import LandmarkCompleterConfig
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.model_folder import CONFIG_NAME
from dubber.models.speech_encoder import SpeechEncoderConfig
from dubber.weights import resolve_bundle, sha256_of

log = get_logger("runtime")

RUNTIMES = ("torch", "onnx")
# The execution providers tried in this order among those the installed onnxruntime has (onnxruntime-gpu brings
# CUDA; TensorRT builds an engine per input shape, so it is used only when DUB_ORT_PROVIDERS names it).
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError(
            None, "--runtime onnx needs onnxruntime: pip install 'dubber[onnx]' (or 'dubber[onnx-gpu]')"
        ) from None


def providers() -> list[str]:
    """``DUB_ORT_PROVIDERS`` (comma-separated) or the first of PROVIDERS available, CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = [p.strip() for p in os.environ.get("DUB_ORT_PROVIDERS", "").split(",") if p.strip()] or list(PROVIDERS)
    missing = [p for p in wanted if p not in available]
    if missing and os.environ.get("DUB_ORT_PROVIDERS"):
        raise InputError(
            None, f"DUB_ORT_PROVIDERS: {', '.join(missing)} not in this onnxruntime ({', '.join(available)})"
        )
    chosen = [p for p in wanted if p in available]
    return chosen + ([] if "CPUExecutionProvider" in chosen else ["CPUExecutionProvider"])


def cpu_threads() -> int:
    """onnxruntime's threads on the CPU: ``OMP_NUM_THREADS`` or the cores free now, as torch's (``dubber.cpu_threads``:
    a thread per core collapses when other work holds the cores)."""
    from dubber.cpu_threads import free_cores

    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else free_cores()


def is_onnx_export(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def read_export(folder: Path) -> dict:
    """The export's manifest, every graph checked against its sha256."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder / MANIFEST_NAME}: unreadable ONNX manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise WeightsError(f"{folder / MANIFEST_NAME}: format {manifest.get('format')!r}, this dubber reads {FORMAT}")
    for name, graph in manifest["graphs"].items():
        path = folder / graph["file"]
        if not path.is_file():
            raise WeightsError(f"{path}: missing (graph {name} of the ONNX export)")
        if sha256_of(path) != graph["sha256"]:
            raise WeightsError(f"{path}: sha256 mismatch (graph {name} of the ONNX export)")
    return manifest


def export_key(weights: str | Path) -> str:
    """What an export of ``weights`` depends on: the bundle's files, the speech encoder's, the opset, torch."""
    import torch

    bundle = resolve_bundle(weights)
    h = hashlib.sha256(f"{OPSET} {torch.__version__} {FORMAT}".encode())
    landmarks = json.loads((Path(bundle.landmarks) / CONFIG_NAME).read_text())
    for member in landmarks.get("members", {}) or [None]:
        cfg = json.loads((Path(bundle.landmarks) / (member or "") / CONFIG_NAME).read_text())
        if cfg.get("speech_encoder"):
            h.update(f"speech {cfg['speech_encoder']} {cfg.get('speech_layer', 0)}".encode())
    for folder in (Path(bundle.landmarks), Path(bundle.renderer)):
        h.update(json.dumps(folder_digest(folder), sort_keys=True).encode())
    return h.hexdigest()[:32]


def cached_exports(cache_dir: Path) -> list[tuple[Path, int]]:
    """(folder, bytes) of each export ``--runtime onnx`` made into the cache folder."""
    folders = sorted(p.parent for p in (cache_dir / "onnx").glob(f"*/{MANIFEST_NAME}"))
    return [(f, sum(p.stat().st_size for p in f.rglob("*") if p.is_file())) for f in folders]


def onnx_export_for(weights: str | Path, cache_dir: Path) -> Path:
    """The export folder for ``weights``: itself when it is one, else the cached export (made when missing)."""
    if is_onnx_export(weights):
        return Path(weights)
    folder = cache_dir / "onnx" / export_key(weights)
    if is_onnx_export(folder):
        return folder
    log.info("exporting the %s weights to ONNX once, into %s", weights, folder)
    export_onnx(weights, folder, overwrite=True)  # written under a temporary name, renamed at the end
    return folder


def load_onnx_models(folder: Path, session_providers: list[str] | None = None):
    """(landmarks, renderer, speech encoder or None) backed by onnxruntime sessions over ``folder``'s graphs."""
    from dubber.render.renderer_pipeline import FaceRenderer
    from dubber.runtime.onnx_models import OnnxCompleter, OnnxRendererUNet, OnnxSpeechEncoder

    manifest = read_export(folder)
    chosen = session_providers or providers()
    threads = cpu_threads()
    graphs = manifest["graphs"]
    members = {}
    for name in sorted(g.split("/", 1)[1] for g in graphs if g.startswith("landmarks/")):
        cfg = LandmarkCompleterConfig.from_dict(json.loads((folder / "landmarks" / name / CONFIG_NAME).read_text()))
        members[name] = OnnxCompleter(folder / graphs[f"landmarks/{name}"]["file"], cfg, chosen, threads)
    top = json.loads((folder / "landmarks" / CONFIG_NAME).read_text())
    if top.get("model") == "LandmarkEnsemble":
        landmarks = LandmarkEnsemble(members, top["members"]).eval()
    else:
        (landmarks,) = members.values()
    speech = None
    if "speech_encoder" in graphs:
        cfg = json.loads((folder / "speech_encoder" / CONFIG_NAME).read_text())
        layer = int(cfg.pop("layer"))
        speech = OnnxSpeechEncoder(
            folder / graphs["speech_encoder"]["file"], SpeechEncoderConfig.from_dict(cfg), layer, chosen, threads
        )
    renderer = FaceRenderer.with_settings(OnnxRendererUNet(folder / "renderer", chosen, threads), folder / "renderer")
    log.debug("ONNX models from %s on %s", folder, ", ".join(chosen))
    return landmarks, renderer, speech
