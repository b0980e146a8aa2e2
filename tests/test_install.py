"""A wheel built from the repository, installed into a fresh venv outside it, dubs the demo sample offline with the
weights it carries (no DUB_WEIGHTS, no source tree on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from dubber.media import probe_media

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the wheel; its dependencies come from this environment's site-packages (a .pth line),
    so the test needs no network and no second copy of torch."""
    root = tmp_path_factory.mktemp("install")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((root / "dist").glob("dubber-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    return venv


def test_the_installed_wheel_dubs_the_demo_sample_from_another_folder(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DUB_WEIGHTS", "PYTHONPATH")}
    python = installed / "bin" / "python"
    where = subprocess.run(  # the code, the weights and the table a photo's references are built from
        [
            python,
            "-c",
            "import dubber, dubber.weights as w, dubber.face.speaking_mouths as m; print(dubber.__file__); "
            "print(w.weights_root()); print(m.TABLE); print(len(m.speaking_mouths()[1]))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed) for p in where[:3]), where  # nothing read from the source tree
    assert where[3] == "15", where
    for script, out in (("make_sample.py", "sample.mp4"), ("make_speech.py", "speech.wav")):
        subprocess.run(
            [python, REPO / "examples" / script, tmp_path / out],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    dub = subprocess.run(
        [installed / "bin" / "dub", "sample.mp4", "--audio", "speech.wav", "-o", "dubbed.mp4", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert dub.returncode == 0, dub.stderr
    info = probe_media(tmp_path / "dubbed.mp4")
    assert info.video.frame_count > 25 and info.audio is not None
    verify = subprocess.run(
        [installed / "bin" / "dub", "weights", "verify"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0 and verify.stdout.count("ok ") >= 10 and "BAD" not in verify.stdout
