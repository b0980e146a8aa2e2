"""The models a ``DubbingPipeline`` is built from: shipped or given torch weights, or their onnxruntime export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dubber.errors import InputError
from dubber.pipeline.options import DubOptions, resolve_device, resolve_dtype


@dataclass
class LoadedModels:
    landmarks: Any  # LandmarkCompleter | LandmarkEnsemble, or its onnxruntime stand-in
    renderer: Any  # FaceRenderer, or its onnxruntime stand-in
    name: str
    runtime: str = "torch"
    speech_encoder: Any = None  # None: the pipeline loads the one the completer names


def load_models(weights: str | Path, device: str, dtype: str, runtime: str, options: DubOptions | None) -> LoadedModels:
    """Weights by name from the weights folder (``DUB_WEIGHTS`` or the shipped ``weights/``), sha256-checked, or
    from a folder holding ``landmarks/`` and ``renderer/``; ``runtime`` "onnx": their onnxruntime export."""
    if runtime == "onnx":
        return _load_onnx(weights, device, dtype, options or DubOptions())
    if runtime != "torch":
        raise InputError(None, f"unknown runtime {runtime!r}; choose from torch, onnx")
    from dubber.weights import load_landmark_model, load_renderer, resolve_bundle

    dev = resolve_device(device)
    precision = resolve_dtype(dtype, dev)
    bundle = resolve_bundle(weights)
    return LoadedModels(
        landmarks=load_landmark_model(bundle.landmarks, device=dev, dtype=precision),
        renderer=load_renderer(bundle.renderer, device=dev, dtype=precision),
        name=bundle.name,
    )


def _load_onnx(weights: str | Path, device: str, dtype: str, opts: DubOptions) -> LoadedModels:
    from dubber.pipeline.adaptation_cache import default_cache_dir
    from dubber.runtime.onnx_bundle import load_onnx_models, onnx_export_for, providers, require_onnxruntime

    require_onnxruntime()
    if (dtype or "auto") not in ("auto", "float32"):
        raise InputError(None, f"--dtype {dtype}: the ONNX graphs are float32 (--runtime torch for other dtypes)")
    device = (device or "auto").strip().lower()
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(None, f"--device {device}: with --runtime onnx give auto, cpu or cuda")
    chosen = ["CPUExecutionProvider"] if device == "cpu" else providers()
    if device == "cuda" and "CUDAExecutionProvider" not in chosen:
        raise InputError(None, "--device cuda: this onnxruntime has no CUDA provider (pip install 'dubber[onnx-gpu]')")
    cache = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
    landmarks, renderer, speech = load_onnx_models(onnx_export_for(weights, cache), chosen)
    return LoadedModels(landmarks, renderer, name=str(weights), runtime="onnx", speech_encoder=speech)
