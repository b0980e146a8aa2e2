"""``dub export onnx``: a weights bundle's models as ONNX graphs with a manifest, checked against torch.

Folder layout (what ``dubber.runtime`` loads)::

    onnx_manifest.json            format, opset, every graph's file, sha256, inputs, outputs, the largest
                                  difference from torch measured at export, and the torch weights' checksums
    landmarks/config.json         the completer's (or ensemble's) config, as in the torch folder
    landmarks/<member>.onnx       one graph per completer (a single completer: landmarks/model.onnx)
    landmarks/<member>/config.json
    speech_encoder.onnx           the speech encoder at the layer the completers read (when one reads speech)
    speech_encoder/config.json
    renderer/renderer.json        the sampler's settings, as in the torch folder
    renderer/unet/config.json
    renderer/references.onnx      reference crops -> tokens (once per video)
    renderer/condition.onnx       conditioning -> input share, keys and values (once per batch of frames)
    renderer/denoise.onnx         one sampler step

Every graph has a dynamic batch (the completer also a dynamic window length; the speech encoder dynamic frames).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dubber.errors import InputError
from dubber.export.onnx_graphs import (
    CompleterGraph,
    ConditionGraph,
    DenoiseGraph,
    ReferenceGraph,
    SpeechGraph,
)
from dubber.face.landmarks import N_POSE
from dubber.log import get_logger
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.model_folder import CONFIG_NAME
from dubber.weights import resolve_bundle, sha256_of

log = get_logger("export")

FORMAT = "dubber-onnx/1"
MANIFEST_NAME = "onnx_manifest.json"
OPSET = 17
N_POINTS = 131
SINGLE_MEMBER = "model"  # the graph name of a completer that is not an ensemble


@dataclass
class ExportedGraph:
    file: str  # relative to the export folder
    sha256: str
    inputs: list[str]
    outputs: list[str]
    max_abs_diff: float  # onnxruntime against torch on the export's check inputs


@dataclass
class OnnxExport:
    folder: Path
    opset: int
    graphs: dict[str, ExportedGraph] = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "opset": self.opset,
            "source": self.source,
            "graphs": {k: asdict(v) for k, v in self.graphs.items()},
        }


def folder_digest(folder: Path) -> dict[str, str]:
    """Each file's sha256 under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _export_graph(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    folder: Path,
    file: str,
    dynamic: dict[str, dict[int, str]],
    opset: int,
) -> ExportedGraph:
    import onnxruntime as ort

    path = folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()  # a new wrapper starts in training mode, which the exporter restores on all it wraps
    inputs, outputs = list(module.inputs), list(module.outputs)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # nn.TransformerEncoder's fused kernel has no ONNX form
    try:
        _trace(module, args, path, inputs, outputs, dynamic, opset)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    with torch.no_grad():
        expected = module(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: a.numpy() for name, a in zip(inputs, args, strict=True) if name in _graph_inputs(session)}
    got = session.run(outputs, feed)
    diff = max(float(np.abs(g - e.float().numpy()).max()) for g, e in zip(got, expected, strict=True))
    return ExportedGraph(file, sha256_of(path), inputs, outputs, diff)


def _trace(module, args, path: Path, inputs, outputs, dynamic, opset: int) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _graph_inputs(session) -> set[str]:
    return {i.name for i in session.get_inputs()}


def _batch_axes(names, axis_name: str = "batch") -> dict[str, dict[int, str]]:
    return {n: {0: axis_name} for n in names}


def _export_landmarks(model, folder: Path, opset: int, gen: torch.Generator) -> dict[str, ExportedGraph]:
    members = dict(model.members) if isinstance(model, LandmarkEnsemble) else {SINGLE_MEMBER: model}
    graphs = {}
    for name, completer in members.items():
        cfg = completer.config
        b, t = 2, cfg.window
        audio = torch.randn(b, t, cfg.audio_steps, cfg.n_features, generator=gen)
        pose = face_points(gen, b, t)[..., :N_POSE, :]
        refs = face_points(gen, b, cfg.n_refs)
        graph = CompleterGraph(completer.float())
        dynamic = {"audio": {0: "batch", 1: "window"}, "pose": {0: "batch", 1: "window"}, "refs": {0: "batch"}}
        dynamic["content"] = {0: "batch", 1: "window"}
        graphs[f"landmarks/{name}"] = _export_graph(
            graph, (audio, pose, refs), folder, f"landmarks/{name}.onnx", dynamic, opset
        )
        (folder / "landmarks" / name).mkdir(parents=True, exist_ok=True)
        (folder / "landmarks" / name / CONFIG_NAME).write_text(
            json.dumps({"model": "LandmarkCompleter", **cfg.to_dict()}, indent=1)
        )
    return graphs


def export_onnx(bundle: str | Path, out: str | Path, *, opset: int = OPSET, overwrite: bool = False) -> OnnxExport:
    """Export the bundle's models (float32) to ``out``; each graph is run once with onnxruntime and compared with
    torch, and the largest difference is kept in the manifest. Written under a temporary name and renamed at the
    end: ``out`` never holds a partial export."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError(None, "ONNX export needs onnx and onnxruntime: pip install 'dubber[onnx]'") from None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; the export is a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "exists and is not empty (pass --overwrite to replace it)")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        result = _export_into(bundle, partial, opset)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    result.folder = out
    return result


def _export_into(bundle: str | Path, out: Path, opset: int) -> OnnxExport:
    from dubber.weights import load_landmark_model, load_renderer, load_speech_encoder

    started = time.perf_counter()
    source = resolve_bundle(bundle)
    landmarks = load_landmark_model(source.landmarks)
    renderer = load_renderer(source.renderer)
    gen = torch.Generator().manual_seed(0)
    result = OnnxExport(out, opset)
    result.source = {
        "bundle": source.name,
        "landmarks": folder_digest(Path(source.landmarks)),
        "renderer": folder_digest(Path(source.renderer)),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "landmarks").mkdir(parents=True)
    shutil.copy(Path(source.landmarks) / CONFIG_NAME, out / "landmarks" / CONFIG_NAME)
    result.graphs.update(_export_landmarks(landmarks, out, opset, gen))
    cfg = landmarks.config
    if cfg.speech_encoder:
        encoder = load_speech_encoder(cfg.speech_encoder).float()
        mel = torch.randn(1, encoder.config.n_mels, 2 * encoder.config.n_ctx, generator=gen)
        dynamic = {"mel": {0: "batch", 2: "frames"}, "features": {0: "batch", 1: "steps"}}
        graph = SpeechGraph(encoder, cfg.speech_layer)
        result.graphs["speech_encoder"] = _export_graph(graph, (mel,), out, "speech_encoder.onnx", dynamic, opset)
        (out / "speech_encoder").mkdir(exist_ok=True)
        (out / "speech_encoder" / CONFIG_NAME).write_text(
            json.dumps({"model": "SpeechEncoder", **encoder.config.to_dict(), "layer": cfg.speech_layer}, indent=1)
        )
        result.source["speech_encoder"] = cfg.speech_encoder
    result.graphs.update(_export_renderer(renderer, Path(source.renderer), out, opset, gen))
    result.seconds = time.perf_counter() - started
    (out / MANIFEST_NAME).write_text(json.dumps(result.to_dict(), indent=1))
    return result


def _export_renderer(renderer, torch_folder: Path, out: Path, opset: int, gen: torch.Generator) -> dict:
    from dubber.render.renderer_pipeline import PIPELINE_CONFIG

    unet = renderer.unet.float().eval()
    (out / "renderer" / "unet").mkdir(parents=True, exist_ok=True)
    shutil.copy(torch_folder / PIPELINE_CONFIG, out / "renderer" / PIPELINE_CONFIG)
    shutil.copy(torch_folder / "unet" / "config.json", out / "renderer" / "unet" / "config.json")
    s, k, b = int(unet.config.sample_size), int(unet.config.n_refs), 2
    graphs = {}
    crops = torch.rand(3, 3, s, s, generator=gen) * 2 - 1
    points = face_points(gen, 3)
    refs = ReferenceGraph(unet)
    graphs["renderer/references"] = _export_graph(
        refs,
        (crops, points),
        out,
        "renderer/references.onnx",
        _batch_axes([*refs.inputs, *refs.outputs], "pool"),
        opset,
    )
    with torch.no_grad():
        pool = refs(crops, points)
    order = torch.tensor([[0, 1, 2][:k], [2, 1, 0][:k]])
    tokens = tuple(t[order].flatten(1, 2) for t in pool)
    masked = torch.rand(b, 3, s, s, generator=gen) * 2 - 1
    mask = torch.from_numpy(_mask(s)).expand(b, 1, s, s).contiguous()
    landmarks = face_points(gen, b)
    hint = (torch.rand(b, 3, s, s, generator=gen) * 2 - 1,) if unet.config.reference_hint else ()
    drop = torch.tensor([False, True])
    cond = ConditionGraph(unet)
    cond_args = (masked, mask, landmarks, *hint, drop, *tokens)
    # The references' tokens, and the keys and values made of them, are as many as the weights pool them to
    # (reference_key_side): a dynamic axis, like the batch.
    axes = _batch_axes([*cond.inputs, *cond.outputs])
    for name in cond.inputs:
        if name.startswith("tokens_"):
            axes[name][1] = f"n_{name}"
    for name in cond.outputs:
        if name.startswith("kv_"):
            axes[name][2] = f"n_{name}"
    graphs["renderer/condition"] = _export_graph(cond, cond_args, out, "renderer/condition.onnx", axes, opset)
    with torch.no_grad():
        conditioned = cond(*cond_args)
    den = DenoiseGraph(unet)
    sample = torch.randn(b, 3, s, s, generator=gen)
    timestep = torch.tensor([999.0, 999.0])
    den_args = (sample, timestep, conditioned[0], masked, mask, *hint, *conditioned[1:])
    axes = _batch_axes([*den.inputs, *den.outputs])
    for name in den.inputs:
        if name.startswith("kv_"):
            axes[name][2] = f"n_{name}"
    graphs["renderer/denoise"] = _export_graph(den, den_args, out, "renderer/denoise.onnx", axes, opset)
    return graphs


def face_points(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """(*shape, 131, 2) model points of the mean face, jittered: check inputs shaped like a face, since the
    completer's pose-affine base is ill-posed on random points."""
    from dubber.face.aligner import canonical_face
    from dubber.face.landmarks import ALL_INDICES

    mean = torch.from_numpy(canonical_face()[list(ALL_INDICES)])
    return mean + 0.005 * torch.randn(*shape, N_POINTS, 2, generator=gen)


def _mask(size: int) -> np.ndarray:
    from dubber.render import lower_face_mask

    return lower_face_mask(size)[None, None].astype(np.float32)


__all__ = ["OnnxExport", "ExportedGraph", "export_onnx", "folder_digest", "MANIFEST_NAME", "FORMAT", "OPSET"]
