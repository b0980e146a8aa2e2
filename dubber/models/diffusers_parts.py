"""The parts of diffusers the renderer is built from, imported without torch's compiler.

diffusers' import runs ``from torch._dynamo import allow_in_graph`` for one decorator, which only tells
``torch.compile`` to keep some of diffusers' attention modules whole in its graphs, and falls back to a decorator that
does nothing where that import fails. Importing ``torch._dynamo`` (with sympy and the distributed package under it)
was 1.9 s of a dub's start on a 2-core CPU, and a dub never compiles. So diffusers is first imported here, in a
thread where that one import fails; anything that imports ``torch._dynamo`` later (``torch.compile``, the ONNX
export) gets the real module. The renderer's weights are loaded by ``RendererUNet.load`` rather than diffusers'
``from_pretrained``, whose hooks import ``torch._dynamo`` too.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

COMPILER = "torch._dynamo"


class _CompilerRefused(importlib.abc.MetaPathFinder):
    """Fails the import of torch's compiler in the thread that made it, and nowhere else."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name, path=None, target=None):
        if name == COMPILER and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"{COMPILER} is not imported with diffusers", name=name)
        return None


@contextmanager
def compiler_left_unimported() -> Iterator[None]:
    """While inside, importing ``torch._dynamo`` fails in this thread unless it is imported already."""
    finder = _CompilerRefused()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


with compiler_left_unimported():
    from diffusers import ConfigMixin, DDIMScheduler, DDPMScheduler, ModelMixin
    from diffusers.configuration_utils import register_to_config
    from diffusers.models.attention_processor import Attention
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps
    from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
    from diffusers.utils.constants import SAFETENSORS_WEIGHTS_NAME

__all__ = [
    "SAFETENSORS_WEIGHTS_NAME",
    "Attention",
    "ConfigMixin",
    "DDIMScheduler",
    "DDPMScheduler",
    "Downsample2D",
    "ModelMixin",
    "ResnetBlock2D",
    "TimestepEmbedding",
    "Timesteps",
    "Upsample2D",
    "compiler_left_unimported",
    "register_to_config",
]
