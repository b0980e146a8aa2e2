"""``--face-backend insightface``: SCRFD finds the face, MediaPipe's mesh draws the points. The detector is the one
PyPI's scrfd sdist carries (``make setup`` puts it in .venv/share/scrfd; these tests skip without it)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from dubber.cli.app import run
from dubber.face.tracker import FaceTracker
from dubber.media import VideoReader
from tests.conftest import shared_path
from tests.media_factory import face_frame, make_audio, make_face_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def scrfd_models() -> Path:
    folder = Path(os.environ.get("DUB_FACE_MODELS") or Path(sys.prefix) / "share" / "scrfd")
    if not any(folder.glob("*.onnx")):
        pytest.skip(f"no SCRFD model in {folder} (make setup fetches one)")
    return folder


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


def test_scrfd_finds_the_face_and_the_tracker_follows_it(scrfd_models, tmp_path):
    from dubber.face.insightface_backend import InsightFaceBackend

    with InsightFaceBackend(scrfd_models) as backend:
        image = face_frame(0, 320, 320)
        (box,) = backend.detect(image)
        assert box.score > 0.5 and 60 < box.width < 260 and box.x0 < 160 < box.x1  # the astronaut's face
        assert backend.detect(np.full((240, 320, 3), 128, np.uint8)) == []
        # A close-up filling a small frame (a 224-256 px dataset clip): too large for the detector at its input size
        # until it looks again in a bigger canvas.
        close = cv2.resize(data.astronaut()[40:200, 150:310], (256, 256), interpolation=cv2.INTER_AREA)
        assert not len(backend._detect(np.ascontiguousarray(close[:, :, ::-1])))  # missed at the input size
        (box,) = backend.detect(close)
        assert box.width > 120 and box.x0 < 128 < box.x1
        video = make_face_video(tmp_path / "face.mp4", frames=12, size=256)
        with FaceTracker(backend) as tracker:
            found = [tracker.step(frame).face is not None for frame in VideoReader(video)]
    assert all(found)


def test_dub_with_the_insightface_backend(scrfd_models, tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    video = make_face_video(tmp_path / "face.mp4", frames=12)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.48)
    out = tmp_path / "out.mp4"
    args = ["video", str(video), "--audio", str(speech), "-o", str(out), "--weights", TINY_BUNDLE, "--json"]
    assert run([*args, "--face-backend", "insightface", "--face-models", str(scrfd_models)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["face_frames"] == result["frames"] == 12 and result["settings"]["face_backend"] == "insightface"


def test_the_insightface_backend_without_models_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DUB_FACE_MODELS", raising=False)
    video = make_face_video(tmp_path / "face.mp4", frames=2)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.1)
    for extra, says in [([], "DUB_FACE_MODELS"), (["--face-models", str(tmp_path)], "no .onnx files")]:
        code = run(["video", str(video), "--audio", str(speech), "--face-backend", "insightface", *extra])
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.shared_data
def test_insightface_dubs_a_dev_clip_with_the_face_found(
    scrfd_models, shared_manifest, tiny_root, tmp_path, monkeypatch
):
    from dubber.pipeline import DubbingPipeline, DubOptions

    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    row = next(r for r in shared_manifest if r["split"] == "dev" and r["speaker"] == "katie_hill")
    speech = make_audio(tmp_path / "speech.wav", seconds=2.0)
    options = DubOptions(face_backend="insightface", face_models=str(scrfd_models), crf=30, preset="ultrafast")
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu", options=options)
    result = pipe(shared_path(row), speech, tmp_path / "out.mp4")
    assert result.face_frames >= 0.95 * result.frames
