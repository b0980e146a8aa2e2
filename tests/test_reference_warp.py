"""The pose-affine base: references carried to each frame's head pose (dubber.models.reference_warp)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.reference_warp import warp_references
from dubber.training.landmark_trainer import LandmarkTrainConfig, train_landmarks
from tests.synthetic_cache import make_cache

TINY_AFFINE = replace(LandmarkCompleterConfig.named("tiny"), base="pose-affine")
SPEAKERS = {"ann": "train", "bob": "train", "dan": "dev"}


def _points(b: int, n: int, p: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 + 0.4 * torch.rand(b, n, p, 2, generator=g)


def _affine(points: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return points @ a.T + t


def _numpy_warp(refs_pose: np.ndarray, refs_content: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The same map, written independently: one least-squares fit per (reference, frame) pair."""
    out = np.zeros((len(pose), refs_content.shape[1], 2))
    for rp, rc in zip(refs_pose, refs_content, strict=True):
        src = np.concatenate([rp, np.ones((len(rp), 1))], axis=1)
        for t, fp in enumerate(pose):
            a, *_ = np.linalg.lstsq(src, fp, rcond=None)
            out[t] += np.concatenate([rc, np.ones((len(rc), 1))], axis=1) @ a
    return out / len(refs_pose)


def test_warp_matches_an_independent_least_squares_fit():
    refs_pose, refs_content, pose = _points(1, 4, 74, 0), _points(1, 4, 57, 1), _points(1, 6, 74, 2)
    got = warp_references(refs_pose, refs_content, pose)[0].numpy()
    want = _numpy_warp(refs_pose[0].double().numpy(), refs_content[0].double().numpy(), pose[0].double().numpy())
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_a_frame_posed_like_the_references_gets_their_mean_shape():
    refs_pose = _points(2, 1, 74, 3).expand(2, 5, 74, 2)  # five references with the same upper face
    refs_content = _points(2, 5, 57, 4)
    out = warp_references(refs_pose, refs_content, refs_pose[:, :3])
    torch.testing.assert_close(out, refs_content.mean(1, keepdim=True).expand(2, 3, 57, 2), atol=2e-5, rtol=0)


def test_an_affine_head_motion_moves_the_shape_with_it():
    refs_pose = _points(1, 1, 74, 5).expand(1, 3, 74, 2)
    refs_content = _points(1, 3, 57, 6)
    a = torch.tensor([[1.05, 0.08], [-0.04, 0.93]])  # a nod and a turn foreshorten the face, to first order
    t = torch.tensor([0.02, -0.03])
    out = warp_references(refs_pose, refs_content, _affine(refs_pose[:, :1], a, t))
    torch.testing.assert_close(out[0, 0], _affine(refs_content[0].mean(0), a, t), atol=2e-5, rtol=0)
    # with references under different poses each is carried by its own fit: not the same as warping their mean
    mixed_pose = torch.cat([refs_pose[:, :1], _affine(refs_pose[:, 1:], a, t)], dim=1)
    out = warp_references(mixed_pose, refs_content, refs_pose[:, :1])
    inv = torch.linalg.inv(a)
    want = (refs_content[0, 0] + _affine(refs_content[0, 1:], inv, -t @ inv.T).sum(0)) / 3
    torch.testing.assert_close(out[0, 0], want, atol=2e-5, rtol=0)


def test_degenerate_points_do_not_fail():
    zeros = torch.zeros(1, 2, 74, 2)
    out = warp_references(zeros, torch.zeros(1, 2, 57, 2), torch.zeros(1, 4, 74, 2))
    assert torch.isfinite(out).all()


def test_untrained_affine_completer_predicts_the_warped_references():
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY_AFFINE).eval()
    g = torch.Generator().manual_seed(1)
    mel = torch.rand(2, TINY_AFFINE.window, 16, 80, generator=g)
    pose, refs = _points(2, TINY_AFFINE.window, 74, 7), _points(2, TINY_AFFINE.n_refs, 131, 8)
    out = model(mel, pose, refs)
    torch.testing.assert_close(out, warp_references(refs[:, :, :74], refs[:, :, 74:], pose))
    # the mean base ignores the frame's pose; this one does not
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_affine_completer_saves_and_loads(tmp_path):
    torch.manual_seed(1)
    model = LandmarkCompleter(TINY_AFFINE).eval()
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["base"] == "pose-affine"
    assert LandmarkCompleter.from_pretrained(tmp_path / "m").config == TINY_AFFINE
    # folders written before the option existed load as the mean base
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["base"]
    assert LandmarkCompleterConfig.from_dict(config).base == "mean"
    with pytest.raises(ValueError, match="unknown base"):
        replace(TINY_AFFINE, base="warp")


def _train(cache, run, **kw):
    cfg = LandmarkTrainConfig(model="tiny", batch_size=8, max_steps=3, eval_every=10**6, checkpoint_minutes=1e9, **kw)
    return train_landmarks(cache, run, cfg, device="cpu")


def test_training_with_the_affine_base(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    _train(cache, tmp_path / "run", base="pose-affine")
    assert LandmarkCompleter.from_pretrained(tmp_path / "run" / "model").config.base == "pose-affine"
    LandmarkCompleter(TINY_AFFINE).save_pretrained(tmp_path / "start")
    with pytest.raises(ValueError, match="base cannot change"):
        _train(cache, tmp_path / "run2", base="pose-affine", init_from=str(tmp_path / "start"))
    assert not (tmp_path / "run2").exists()


def test_cli_refuses_an_unknown_base(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    cmd = [sys.executable, "-m", "dubber", "train", "landmarks", "--data", str(cache), "--out", str(tmp_path / "r")]
    proc = subprocess.run([*cmd, "--set", "base=warp"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown base 'warp'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_ship_tool_names_members_sharing_an_audio_input_apart():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "ship_landmarks.py"
    spec = importlib.util.spec_from_file_location("ship_landmarks", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    names = tool.member_names(["mel+speech", "mel", "speech", "speech"])
    assert names == ["mel_speech", "mel", "speech", "speech_2"]


def test_the_warp_never_imports_the_onnx_exporter():
    """Asking ``torch.onnx`` whether it exports imported it: 0.2 s in the middle of a dub's plan."""
    code = (
        "import sys, torch\n"
        "from dubber.models.reference_warp import warp_references\n"
        "p = torch.rand(1, 3, 74, 2)\n"
        "warp_references(p, torch.rand(1, 3, 57, 2), p[:, :2])\n"
        "print(int('torch.onnx' in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "0"
