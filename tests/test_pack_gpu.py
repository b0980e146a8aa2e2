"""scripts/pack_gpu.py: the slimmed MediaPipe keeps every Python file and the face models, drops the unused
solutions' models; the install script installs what a pack holds (a tiny wheel and MediaPipe tarball here)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

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


def test_the_install_script_installs_the_packs_wheels_and_mediapipe(tmp_path):
    pack = _script()
    out = tmp_path / ".gpu"
    (out / "wheels").mkdir(parents=True)
    files = {
        "tinypkg/__init__.py": "VALUE = 7\n",
        "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "tinypkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(out / "wheels" / "tinypkg-1.0-py3-none-any.whl", "w") as zf:
        for name, text in {**files, "tinypkg-1.0.dist-info/RECORD": record}.items():
            zf.writestr(name, text)
    (tmp_path / "mp" / "mediapipe").mkdir(parents=True)
    (tmp_path / "mp" / "mediapipe" / "__init__.py").write_text("")
    with tarfile.open(out / "mediapipe.tgz", "w:gz") as tar:
        tar.add(tmp_path / "mp" / "mediapipe", arcname="mediapipe")
    (out / "install.sh").write_text(pack.INSTALL_SH)
    site = tmp_path / "site"
    env = {**os.environ, "SITE": str(site), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", str(out / "install.sh")], check=True, capture_output=True, env=env, cwd=tmp_path)
    assert (site / "tinypkg" / "__init__.py").read_text() == "VALUE = 7\n"
    assert (site / "mediapipe" / "__init__.py").is_file()


def test_the_skimage_stand_in_draws_the_same_portrait(tmp_path):
    from skimage import data

    pack = _script()
    shim = pack.write_skimage_shim(tmp_path / "skimage-shim")
    spec = importlib.util.spec_from_file_location("shim_data", shim / "skimage" / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (shim / "skimage" / "astronaut.png").stat().st_size < 1 << 20
    assert np.array_equal(module.astronaut(), data.astronaut())
