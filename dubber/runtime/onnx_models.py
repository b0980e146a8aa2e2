"""Stand-ins for the torch models that run the graphs of ``dub export onnx`` with onnxruntime.

Each is an ``nn.Module`` with the torch model's config and call signature (and one empty parameter, which tells
callers the device and dtype: CPU tensors in float32), so the pipeline, the sampler and the motion planner use them
unchanged: ``LandmarkEnsemble`` holds ``OnnxCompleter`` members, ``FaceRenderer`` an ``OnnxRendererUNet``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from dubber.models.landmark_completer import LandmarkCompleterConfig
from dubber.models.renderer_unet import DenoiserConditioning
from dubber.models.speech_encoder import SpeechEncoderConfig


def session(path: Path, providers: list[str], threads: int = 0):
    """``threads``: onnxruntime's intra-op threads on the CPU (0: its default, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are noise here
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=providers)


class _OnnxModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # device and dtype for callers


def _run(sess, outputs: list[str] | None, feed: dict[str, torch.Tensor]) -> list[np.ndarray]:
    wanted = {i.name for i in sess.get_inputs()}
    return sess.run(outputs, {k: _numpy(v) for k, v in feed.items() if k in wanted})


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return t.numpy() if t.dtype == torch.bool else t.float().contiguous().numpy()


class OnnxCompleter(_OnnxModule):
    """``LandmarkCompleter``'s forward: (audio, pose, refs) -> (B, T, 57, 2) content."""

    def __init__(self, graph: Path, config: LandmarkCompleterConfig, providers: list[str], threads: int = 0) -> None:
        super().__init__()
        self.config = config
        self.sess = session(graph, providers, threads)

    def forward(self, audio: torch.Tensor, pose: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        (content,) = _run(self.sess, None, {"audio": audio, "pose": pose, "refs": refs})
        return torch.from_numpy(content)


class OnnxSpeechEncoder(_OnnxModule):
    """``SpeechEncoder``'s forward at the one layer it was exported at."""

    def __init__(
        self, graph: Path, config: SpeechEncoderConfig, layer: int, providers: list[str], threads: int = 0
    ) -> None:
        super().__init__()
        self.config, self.layer = config, int(layer)
        self.sess = session(graph, providers, threads)

    def forward(self, mel: torch.Tensor, layer: int = 0) -> torch.Tensor:
        if layer != self.layer:
            raise ValueError(f"this ONNX speech encoder was exported at layer {self.layer}, not {layer}")
        (features,) = _run(self.sess, None, {"mel": mel})
        return torch.from_numpy(features)


class OnnxRendererUNet(_OnnxModule):
    """``RendererUNet``'s inference methods (reference tokens, conditioning, one denoiser step) over three graphs."""

    def __init__(self, folder: Path, providers: list[str], threads: int = 0) -> None:
        super().__init__()
        self.config = SimpleNamespace(**json.loads((folder / "unet" / "config.json").read_text()))
        self.references = session(folder / "references.onnx", providers, threads)
        self.conditioner = session(folder / "condition.onnx", providers, threads)
        self.denoiser = session(folder / "denoise.onnx", providers, threads)
        self.sides = [int(o.name.split("_")[1]) for o in self.references.get_outputs()]
        self.kv_names = [o.name for o in self.conditioner.get_outputs()][1:]

    def encode_references(self, refs: torch.Tensor, ref_landmarks: torch.Tensor) -> dict:
        b, k = refs.shape[:2]
        tokens = _run(self.references, None, {"crops": refs.flatten(0, 1), "landmarks": ref_landmarks.flatten(0, 1)})
        return {
            s: torch.from_numpy(t).reshape(b, k * t.shape[1], t.shape[2])
            for s, t in zip(self.sides, tokens, strict=True)
        }

    def encode_reference_pool(self, crops: torch.Tensor, landmarks: torch.Tensor) -> dict:
        return self.encode_references(crops[:, None], landmarks[:, None])

    @staticmethod
    def gather_references(pool_tokens: dict, order: torch.Tensor) -> dict:
        return {side: tokens[order].flatten(1, 2) for side, tokens in pool_tokens.items()}

    def condition(
        self,
        masked: torch.Tensor,
        mask: torch.Tensor,
        landmarks: torch.Tensor | None,
        reference_tokens: dict,
        hint: torch.Tensor | None = None,
        drop_landmarks: torch.Tensor | None = None,
    ) -> DenoiserConditioning:
        b = masked.shape[0]
        if landmarks is None:  # unconditional: every row takes the null landmark tokens
            landmarks, drop_landmarks = torch.zeros(b, 131, 2), torch.ones(b, dtype=torch.bool)
        drop = torch.zeros(b, dtype=torch.bool) if drop_landmarks is None else drop_landmarks
        feed = {"masked": masked, "mask": mask.expand(b, -1, -1, -1), "landmarks": landmarks, "drop": drop}
        if hint is not None:
            feed["hint"] = hint
        for side, tokens in reference_tokens.items():  # tokens shared by the batch arrive with batch 1
            feed[f"tokens_{side}"] = tokens.expand(b, -1, -1)
        share, *kv = _run(self.conditioner, None, feed)
        key_values = {name: torch.from_numpy(v) for name, v in zip(self.kv_names, kv, strict=True)}
        return DenoiserConditioning(torch.from_numpy(share), key_values, masked, feed["mask"], hint)

    def denoise(self, sample: torch.Tensor, timestep: torch.Tensor | float, cond: DenoiserConditioning) -> torch.Tensor:
        b = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(b)
        feed = {"sample": sample, "timestep": t, "input_share": cond.input_share, "masked": cond.masked}
        feed |= {"mask": cond.mask, **cond.key_values}
        if cond.hint is not None:
            feed["hint"] = cond.hint
        (out,) = _run(self.denoiser, None, feed)
        return torch.from_numpy(out)
