"""``dub export onnx`` and ``--runtime onnx``: the exported graphs match torch (tiny bundle and shipped weights), and
a dub run with onnxruntime matches the torch dub's frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dubber.cli.app import run
from dubber.export import MANIFEST_NAME, export_onnx
from dubber.export.onnx_export import face_points
from dubber.face.landmarks import N_POSE
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.runtime import load_onnx_models
from dubber.weights import load_landmark_model, load_renderer, load_speech_encoder
from tests.dub_checks import frames_of
from tests.media_factory import make_audio, make_face_video
from tests.tiny_bundle import make_tiny_weights

ort = pytest.importorskip("onnxruntime")

LOSSLESS = ["--crf", "0", "--preset", "ultrafast"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# float32 graphs against float32 torch: the same operations in another order.
MODEL_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tiny_ensemble(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights"), "tiny-ensemble", ensemble=True)


@pytest.fixture(scope="module")
def tiny_export(tiny_ensemble, tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUB_WEIGHTS", str(tiny_ensemble))
        return export_onnx("tiny-ensemble", tmp_path_factory.mktemp("onnx") / "tiny").folder


def assert_matches_torch(export: Path, landmarks, renderer, speech) -> None:
    """Every ONNX stand-in against its torch model on fresh inputs at other batch sizes than the export's."""
    onnx_landmarks, onnx_renderer, onnx_speech = load_onnx_models(export)
    g = torch.Generator().manual_seed(7)
    members = landmarks.members if isinstance(landmarks, LandmarkEnsemble) else {"model": landmarks}
    onnx_members = onnx_landmarks.members if isinstance(onnx_landmarks, LandmarkEnsemble) else {"model": onnx_landmarks}
    assert set(members) == set(onnx_members)
    for name, member in members.items():
        cfg = member.config
        args = (
            torch.randn(5, cfg.window, cfg.audio_steps, cfg.n_features, generator=g),
            face_points(g, 5, cfg.window)[..., :N_POSE, :],
            face_points(g, 5, cfg.n_refs),
        )
        with torch.no_grad():
            diff = (member(*args) - onnx_members[name](*args)).abs().max().item()
        assert diff < MODEL_TOLERANCE, f"completer {name}: {diff}"
    if speech is not None:
        mel = torch.randn(2, speech.config.n_mels, 2 * speech.config.n_ctx, generator=g)
        layer = landmarks.config.speech_layer
        with torch.no_grad():
            expected = speech(mel, layer)
        assert (expected - onnx_speech(mel, layer)).abs().max().item() < MODEL_TOLERANCE * expected.abs().max().item()
    s, k, b = renderer.size, renderer.n_refs, 3
    crops = torch.rand(7, 3, s, s, generator=g) * 2 - 1
    points = face_points(g, 7)
    order = torch.randint(0, 7, (b, k), generator=g)
    outs = []
    for r in (renderer, onnx_renderer):
        pool = r.encode_reference_pool(crops, points)
        refs, ref_points = crops[order], points[order]
        args = (crops[:b], points[:b] + 0.01, refs, ref_points)
        outs.append(r(*args, reference_tokens=r.gather_references(pool, order), steps=2, seed=3))
        outs.append(r(*args, reference_tokens=r.gather_references(pool, order), steps=1, seed=3, guidance=2.0))
    for torch_out, onnx_out in zip(outs[:2], outs[2:], strict=True):
        assert (torch_out - onnx_out).abs().max().item() < MODEL_TOLERANCE * 10  # two sampler steps on [-1, 1]


def test_the_tiny_export_matches_torch_and_lists_its_graphs(tiny_ensemble, tiny_export, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_ensemble))
    manifest = json.loads((tiny_export / MANIFEST_NAME).read_text())
    assert set(manifest["graphs"]) == {
        "landmarks/mel",
        "landmarks/speech",
        "speech_encoder",
        "renderer/references",
        "renderer/condition",
        "renderer/denoise",
    }
    assert all(g["max_abs_diff"] < MODEL_TOLERANCE for g in manifest["graphs"].values())
    assert manifest["opset"] == 17 and manifest["source"]["bundle"] == "tiny-ensemble"
    landmarks = load_landmark_model(tiny_ensemble / "tiny-ensemble" / "landmarks")
    speech = load_speech_encoder(landmarks.config.speech_encoder)
    assert_matches_torch(tiny_export, landmarks, load_renderer(tiny_ensemble / "tiny-ensemble" / "renderer"), speech)


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shipped") / "onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DUB_WEIGHTS", raising=False)
        assert run(["export", "onnx", "-o", str(folder), "--json"]) == 0
    return folder


def test_the_shipped_weights_export_and_match_torch(shipped_export, monkeypatch):
    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    landmarks = load_landmark_model(None)
    speech = load_speech_encoder(landmarks.config.speech_encoder)
    assert_matches_torch(shipped_export, landmarks, load_renderer(None), speech)


def test_the_demo_sample_dubs_alike_with_both_runtimes(shipped_export, tmp_path, monkeypatch):
    """The demo's portrait (smaller and shorter) dubbed by the shipped weights with torch and with onnxruntime."""
    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    sample, speech = tmp_path / "astronaut.mp4", make_audio(tmp_path / "speech.wav", seconds=1.2)
    subprocess.run([sys.executable, EXAMPLES / "make_sample.py", sample, "192"], check=True, capture_output=True)
    common = ["video", str(sample), "--audio", str(speech), *LOSSLESS]
    # float32 both: the CPU's auto precision is bfloat16 where the CPU has it, and the graphs are float32.
    assert run([*common, "-o", str(tmp_path / "torch.mp4"), "--dtype", "float32"]) == 0
    assert run([*common, "-o", str(tmp_path / "onnx.mp4"), "--runtime", "onnx", "--weights", str(shipped_export)]) == 0
    torch_frames, onnx_frames = frames_of(tmp_path / "torch.mp4"), frames_of(tmp_path / "onnx.mp4")
    assert len(torch_frames) == len(onnx_frames) == 30
    diff = np.stack([np.abs(a.astype(int) - b.astype(int)) for a, b in zip(torch_frames, onnx_frames, strict=True)])
    assert diff.max() <= 4 and diff.mean() < 0.01, (diff.max(), diff.mean())


def test_an_onnx_dub_matches_the_torch_dub(tiny_ensemble, tiny_export, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_ensemble))
    video = make_face_video(tmp_path / "face.mp4", frames=16)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.6)
    common = ["video", str(video), "--audio", str(speech), "--steps", "2", "--json", *LOSSLESS]
    assert run([*common, "-o", str(tmp_path / "torch.mp4"), "--weights", "tiny-ensemble", "--dtype", "float32"]) == 0
    capsys.readouterr()
    # The export given as --weights, and the bundle exported once into the cache folder by the runtime itself.
    assert run([*common, "-o", str(tmp_path / "onnx.mp4"), "--runtime", "onnx", "--weights", str(tiny_export)]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["runtime"] == "onnx"
    cache = tmp_path / "cache"
    cached = ["-o", str(tmp_path / "cached.mp4"), "--runtime", "onnx", "--weights", "tiny-ensemble"]
    assert run([*common, *cached, "--cache-dir", str(cache)]) == 0
    capsys.readouterr()
    assert run(["cache", "list", "--cache-dir", str(cache), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["onnx_exports"]
    assert (Path(listed["folder"]) / MANIFEST_NAME).is_file() and listed["bytes"] > 0
    reference = frames_of(tmp_path / "torch.mp4")
    for name in ("onnx.mp4", "cached.mp4"):
        frames = frames_of(tmp_path / name)
        assert len(frames) == len(reference)
        diff = np.stack([np.abs(a.astype(int) - b.astype(int)) for a, b in zip(frames, reference, strict=True)])
        assert diff.max() <= 4 and diff.mean() < 0.01, (name, diff.max(), diff.mean())
    assert run(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "1 ONNX export(s)" in capsys.readouterr().out and not (cache / "onnx").exists()


def test_onnx_runtime_refusals_are_one_line(tiny_ensemble, tiny_export, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_ensemble))
    video = make_face_video(tmp_path / "face.mp4", frames=4)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.2)
    base = ["video", str(video), "--audio", str(speech), "-o", str(tmp_path / "o.mp4"), "--runtime", "onnx"]
    assert run([*base, "--weights", str(tiny_export), "--dtype", "bfloat16"]) == 2
    assert "float32" in capsys.readouterr().err
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert run([*base, "--weights", str(tiny_export), "--device", "cuda"]) == 2
        assert "no CUDA provider" in capsys.readouterr().err
    assert run(["export", "onnx", "-o", str(tiny_export), "--weights", "tiny-ensemble"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and len(err.strip().splitlines()) == 1
    damaged = tmp_path / "damaged"
    export_onnx("tiny-ensemble", damaged)
    with open(damaged / "renderer" / "denoise.onnx", "ab") as f:
        f.write(b"\0")
    assert run([*base, "--weights", str(damaged)]) != 0
    err = capsys.readouterr().err
    assert "denoise.onnx: sha256 mismatch" in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_a_failed_export_leaves_nothing_at_the_destination(tiny_ensemble, tmp_path, monkeypatch):
    import dubber.export.onnx_export as onnx_export

    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_ensemble))

    def broken(*args, **kwargs):
        raise RuntimeError("the renderer would not trace")

    monkeypatch.setattr(onnx_export, "_export_renderer", broken)  # after the landmark graphs are written
    with pytest.raises(RuntimeError, match="would not trace"):
        export_onnx("tiny-ensemble", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
