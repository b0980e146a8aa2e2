"""scripts/pack_gpu.py: the slimmed MediaPipe keeps every Python file and the face models, drops the unused
solutions' models; the install script installs what the pack holds."""

from __future__ import annotations

import importlib.util
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("pack_gpu", ROOT / "scripts" / "pack_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stripped_mediapipe_keeps_code_and_face_models_only(tmp_path):
    pack = _script()
    wheel = tmp_path / "mediapipe-0.10.21-cp312-cp312-manylinux_2_17_x86_64.whl"
    members = {
        "mediapipe/__init__.py": b"",
        "mediapipe/python/solutions/pose.py": b"",
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite": b"x" * 100,
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite": b"x" * 100,
        "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite": b"x" * 100,
        "mediapipe/modules/face_detection/face_detection_short_range.tflite": b"x" * 100,
        "mediapipe.libs/libGLESv2.so": b"x",
        "mediapipe-0.10.21.dist-info/METADATA": b"Name: mediapipe",
    }
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    out = pack.strip_mediapipe(wheel, tmp_path / "mp.tgz")
    with tarfile.open(out) as tar:
        kept = {m.name for m in tar.getmembers() if m.isfile()}
    dropped = {n for n in members if "/pose_landmark/" in n or "/selfie_segmentation/" in n}
    assert kept == set(members) - dropped


def test_the_pack_pins_what_this_checkout_runs_with():
    pack = _script()
    pins = dict(p.split("==") for p in pack.pinned(pack.WHEELS))
    assert set(pins) == set(pack.WHEELS) and all(pins.values())
    assert "--no-index" in pack.INSTALL_SH and "mediapipe.tgz" in pack.INSTALL_SH
