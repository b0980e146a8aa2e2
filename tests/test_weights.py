"""Checksummed weights: the manifest, verification, tamper detection, and the shipped landmark model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.weights import (
    LANDMARKS_MODEL,
    WeightsError,
    load_landmark_model,
    read_manifest,
    register_model,
    verified_folder,
    verify_entry,
    weights_root,
)


def _fake_root(tmp_path):
    root = tmp_path / "weights"
    folder = root / "default" / "landmarks"
    torch.manual_seed(0)
    LandmarkCompleter(LandmarkCompleterConfig.named("tiny")).save_pretrained(folder, dtype=torch.float16)
    register_model(LANDMARKS_MODEL, folder, {"training": {"data": "synthetic"}, "metrics": {"lmd": 0.1}}, root)
    return root


def test_register_verify_and_load(tmp_path, monkeypatch):
    root = _fake_root(tmp_path)
    entry = read_manifest(root)["models"][LANDMARKS_MODEL]
    assert set(entry["files"]) == {"default/landmarks/config.json", "default/landmarks/model.safetensors"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in entry["files"].values())
    assert all(c.ok for c in verify_entry(LANDMARKS_MODEL, root))
    monkeypatch.setenv("DUB_WEIGHTS", str(root))
    assert weights_root() == root
    model = load_landmark_model()
    assert model.config.d_model == 32 and not model.training


def test_damaged_or_missing_files_are_named(tmp_path):
    root = _fake_root(tmp_path)
    weights = root / "default" / "landmarks" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="model.safetensors: sha256 does not match"):
        verified_folder(LANDMARKS_MODEL, root)
    weights.unlink()
    with pytest.raises(WeightsError, match="model.safetensors: missing"):
        verified_folder(LANDMARKS_MODEL, root)
    with pytest.raises(WeightsError, match="no model named"):
        verified_folder("default/nothing", root)
    with pytest.raises(WeightsError, match="no weights manifest"):
        read_manifest(tmp_path / "nowhere")


def test_weights_cli_on_a_damaged_folder(tmp_path):
    root = _fake_root(tmp_path)
    env = {"DUB_WEIGHTS": str(root), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "dubber", "weights", "verify", "--json"], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert all(c["ok"] for c in json.loads(ok.stdout)[LANDMARKS_MODEL])
    (root / "default" / "landmarks" / "config.json").write_text("{}")
    bad = subprocess.run([sys.executable, "-m", "dubber", "weights", "verify"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "config.json" in bad.stderr and "Traceback" not in bad.stderr


def test_shipped_landmark_weights_verify_and_run(monkeypatch):
    """The weights in the repository: present, checksums right, small, and a working model: the ensemble of a mel
    completer and three speech completers on the pose-affine base, each hearing its own input of the same sound."""
    import numpy as np

    from dubber.audio.features import AudioFeatures
    from dubber.audio.speech import MelAndSpeechFeatures, encode_speech
    from dubber.models.landmark_ensemble import LandmarkEnsemble
    from dubber.pipeline.motion import predict_from_features
    from dubber.weights import load_speech_encoder

    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    manifest = read_manifest()
    entry = manifest["models"][LANDMARKS_MODEL]
    assert sum(f["size"] for f in entry["files"].values()) < 28 * 2**20  # four 6.2 MB members
    for key in ("members", "metrics", "licence"):
        assert entry[key], key
    assert all(m["steps"] and m["command"].startswith("dub train landmarks") for m in entry["members"].values())
    model = load_landmark_model()
    assert isinstance(model, LandmarkEnsemble) and set(model.weights) == {"mel", "speech", "speech_2", "speech_3"}
    assert model.members["mel"].config.base == "mean"
    for name in ("speech", "speech_2", "speech_3"):
        assert model.members[name].config.audio_input == "speech" and model.members[name].config.base == "pose-affine"
    cfg = model.config
    from dubber.face.aligner import canonical_face
    from dubber.face.landmarks import ALL_INDICES, POSE_INDICES

    face = canonical_face().astype(np.float32)
    t = np.arange(16000) / 16000
    sound = (0.3 * np.sin(2 * np.pi * 200 * t) * (t > 0.4)).astype(np.float32)
    encoder = load_speech_encoder(cfg.speech_encoder)
    features = MelAndSpeechFeatures(
        AudioFeatures(np.zeros((81, 80), np.float32) - 4.0), encode_speech(sound, encoder, layer=cfg.speech_layer)
    )
    times = np.arange(25) / 25.0
    pose = np.repeat(face[list(POSE_INDICES)][None], 25, 0)
    refs = np.repeat(face[list(ALL_INDICES)][None], cfg.n_refs, 0)
    out = predict_from_features(model, features, times, pose, refs)
    assert out.shape == (25, 57, 2) and np.isfinite(out).all()


def test_shipped_renderer_verifies_and_renders(monkeypatch):
    """The shipped renderer: checksums right, fp16 on disk under 32 MiB, loads as float32 and renders a crop."""
    from dubber.face.aligner import canonical_face
    from dubber.face.landmarks import ALL_INDICES
    from dubber.weights import RENDERER_MODEL, load_renderer

    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    entry = read_manifest()["models"][RENDERER_MODEL]
    assert sum(f["size"] for f in entry["files"].values()) < 32 * 2**20
    for key in ("training", "metrics", "licence", "bars"):
        assert entry[key], key
    renderer = load_renderer()
    assert renderer.dtype == torch.float32 and renderer.size == 128
    face = torch.as_tensor(canonical_face())[list(ALL_INDICES)]
    g = torch.Generator().manual_seed(0)
    crops = torch.rand((1, 3, 128, 128), generator=g) * 2 - 1
    refs = torch.rand((renderer.n_refs, 3, 128, 128), generator=g) * 2 - 1
    out = renderer(crops, face[None], refs, face.expand(renderer.n_refs, -1, -1), steps=1)
    assert out.shape == (1, 3, 128, 128) and torch.isfinite(out).all()
