"""diffusers imported without torch's compiler, and the renderer loaded as diffusers loads it."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from dubber.models.diffusers_parts import COMPILER, compiler_left_unimported
from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.render import FaceRenderer
from tests.media_factory import make_audio, make_face_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shard_mib", [None, 0.1])
def test_the_renderer_loads_as_diffusers_loads_it(tmp_path, dtype, shard_mib):
    torch.manual_seed(0)
    unet = RendererUNet(**renderer_config("tiny"))
    for p in unet.parameters():
        p.data.normal_(0, 0.1)
    FaceRenderer(unet).save_pretrained(tmp_path / "r", dtype=torch.float16, max_shard_mib=shard_mib)
    assert (len(list((tmp_path / "r" / "unet").glob("*.safetensors"))) > 1) == (shard_mib is not None)
    ours = RendererUNet.load(tmp_path / "r" / "unet", dtype)
    theirs = RendererUNet.from_pretrained(tmp_path / "r" / "unet", torch_dtype=dtype)
    for kind in ("named_parameters", "named_buffers"):
        a, b = dict(getattr(ours, kind)()), dict(getattr(theirs, kind)())
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
            assert a[name].requires_grad == b[name].requires_grad, name
    assert {b.dtype for b in ours.buffers()} == {torch.float32}  # the model's own positions stay as made
    assert not ours.training and dict(ours.config) == {k: v for k, v in theirs.config.items() if k != "_name_or_path"}


def test_weights_that_do_not_fit_the_config_are_one_line_naming_the_folder(tmp_path):
    import json

    from dubber.errors import WeightsError
    from dubber.weights import load_renderer

    FaceRenderer(RendererUNet(**renderer_config("tiny"))).save_pretrained(tmp_path / "r")
    config = tmp_path / "r" / "unet" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "block_channels": [16, 24]}))
    with pytest.raises(WeightsError, match="does not fit the model") as caught:
        load_renderer(tmp_path / "r")
    assert str(tmp_path / "r" / "unet") in str(caught.value) and "\n" not in str(caught.value)


_DUB_CHECK = """
import sys
from dubber import DubbingPipeline
DubbingPipeline.from_pretrained({bundle!r})({video!r}, {audio!r}, {out!r})
print(int("{compiler}" in sys.modules))
import diffusers.utils.torch_utils as torch_utils
import torch._dynamo
print(torch_utils.maybe_allow_in_graph.__module__, torch._dynamo.allow_in_graph.__module__)
"""


def test_a_dub_never_imports_the_compiler_and_a_later_import_is_the_real_one(tmp_path, monkeypatch):
    """1.9 s of a dub's start on a 2-core CPU: diffusers' import and its model's loading and ``to`` import it."""
    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    video = make_face_video(tmp_path / "face.mp4", frames=8)
    audio = make_audio(tmp_path / "speech.wav", seconds=0.3)
    out = tmp_path / "out.mp4"
    code = _DUB_CHECK.format(bundle=TINY_BUNDLE, video=str(video), audio=str(audio), out=str(out), compiler=COMPILER)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    imported, fallback, real = run.stdout.split()[-3:]
    assert imported == "0" and out.is_file()
    assert fallback == "diffusers.utils.torch_utils"  # diffusers' decorator that does nothing, all a dub needs
    assert real.startswith("torch._dynamo")


def test_the_compiler_is_refused_only_in_the_thread_that_imports_diffusers():
    seen: dict[str, object] = {}
    with compiler_left_unimported():
        finder = sys.meta_path[0]
        with pytest.raises(ModuleNotFoundError, match=COMPILER):
            finder.find_spec(COMPILER)
        assert finder.find_spec("torch.nn") is None
        other = threading.Thread(target=lambda: seen.update(spec=finder.find_spec(COMPILER)))
        other.start()
        other.join()
    assert seen == {"spec": None}
    assert finder not in sys.meta_path
