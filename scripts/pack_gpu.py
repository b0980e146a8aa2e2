"""Pack what dubber needs on a GPU machine that has torch (CUDA) but no network: the wheels it lacks and a slimmed
MediaPipe, with an install script (docs/GPU.md says how a run is carried there).

    .venv/bin/python scripts/pack_gpu.py [--out .gpu] [--python-version 3.12] [--limit-mib 64]

Writes under --out (ignored by git): ``wheels/`` (av, diffusers, protobuf 4, typer and pydantic with what they
import, pytest for the CUDA tests, at the versions installed here, for the machine's Python and manylinux),
``mediapipe.tgz`` (mediapipe without the models of hands, pose, holistic, objectron, palm and selfie segmentation:
17 MB of its 35.6 MB wheel), ``skimage-shim/`` (scikit-image's astronaut portrait behind
``skimage.data.astronaut()``, which the test media and the benchmarks' clips draw; 0.5 MB instead of scikit-image's
wheels) and ``install.sh`` (installs them into a folder outside the tree). Checks that the pack, with the tree's
tracked files but without ``weights/``, fits the limit of what one call carries, and says so. Needs PyPI.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the GPU machine lacks (../shared/GPU.md): pinned to what this checkout runs with.
WHEELS = (
    "av",
    "diffusers",
    "protobuf",
    "typer",
    "annotated-doc",
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing-inspection",
    "importlib_metadata",
    # The CUDA tests (scripts/gpu_checks.sh).
    "pytest",
    "pluggy",
    "iniconfig",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64")
# MediaPipe's solutions a dub never runs; their .py files stay (``import mediapipe`` imports every solution).
UNUSED_MODELS = (
    "hand_landmark",
    "holistic_landmark",
    "objectron",
    "palm_detection",
    "pose_detection",
    "pose_landmark",
    "selfie_segmentation",
)
INSTALL_SH = """#!/bin/sh
# Installs the carried wheels and MediaPipe into SITE (default /root/dubber-site, outside the tree, so it survives
# between calls while the machine stays up); then: export PYTHONPATH=$PWD:$SITE
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
SITE=${SITE:-/root/dubber-site}
mkdir -p "$SITE"
python3 -m pip install -q --no-index --no-deps --target "$SITE" "$HERE"/wheels/*.whl
tar xzf "$HERE/mediapipe.tgz" -C "$SITE"
# The test media and the benchmarks' clips draw scikit-image's astronaut: without scikit-image, a stand-in module.
if [ -d "$HERE/skimage-shim" ] && ! python3 -c "import skimage" 2>/dev/null; then
    cp -r "$HERE/skimage-shim/skimage" "$SITE/"
fi
echo "installed into $SITE: export PYTHONPATH=$PWD:$SITE"
"""
SHIM_DATA = '''"""A stand-in for scikit-image's ``data.astronaut()`` on a GPU machine without scikit-image
(docs/GPU.md): the same public-domain portrait, written here by scripts/pack_gpu.py."""

from pathlib import Path

import cv2


def astronaut():
    image = cv2.imread(str(Path(__file__).with_name("astronaut.png")), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
'''


def write_skimage_shim(dest: Path) -> Path:
    """``dest/skimage``: a package whose ``data.astronaut()`` returns scikit-image's portrait, pixel for pixel."""
    import cv2
    from skimage import data

    package = dest / "skimage"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""scikit-image stand-in: only data.astronaut() (scripts/pack_gpu.py)."""\n')
    (package / "data.py").write_text(SHIM_DATA)
    cv2.imwrite(str(package / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return dest


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` for each package as installed here (so the GPU machine runs what the tests ran)."""
    return [f"{n}=={importlib.metadata.version(n)}" for n in names]


def download(requirements: list[str], dest: Path, python_version: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    cmd += ["--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + requirements, check=True)


def strip_mediapipe(wheel: Path, dest: Path) -> Path:
    """The wheel's files without the unused solutions' models, as a .tgz to untar into a site folder."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        modules = Path(tmp) / "mediapipe" / "modules"
        for name in UNUSED_MODELS:
            for model in (modules / name).glob("**/*.tflite"):
                model.unlink()
        with tarfile.open(dest, "w:gz") as tar:
            for item in sorted(Path(tmp).iterdir()):
                tar.add(item, arcname=item.name)
    return dest


def tracked_bytes(skip: str = "weights/") -> int:
    """The size of the tree's tracked files, less those under ``skip`` (sent in a call of their own)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    files = [ROOT / n for n in names.decode().split("\0") if n and not n.startswith(skip)]
    return sum(f.stat().st_size for f in files if f.is_file())


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    ap.add_argument("--limit-mib", type=float, default=64.0, help="what one call carries, tree included")
    args = ap.parse_args()
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    download(pinned(WHEELS), out / "wheels", args.python_version)
    with tempfile.TemporaryDirectory() as tmp:
        download(pinned(("mediapipe",)), Path(tmp), args.python_version)
        (wheel,) = Path(tmp).glob("mediapipe-*.whl")
        strip_mediapipe(wheel, out / "mediapipe.tgz")
    write_skimage_shim(out / "skimage-shim")
    (out / "install.sh").write_text(INSTALL_SH)
    pack, tree = folder_bytes(out), tracked_bytes()
    mib = 2**20
    print(
        f"{out}: {pack / mib:.1f} MiB; the tree without weights/ {tree / mib:.1f} MiB; together "
        f"{(pack + tree) / mib:.1f} MiB of {args.limit_mib:g}"
    )
    if pack + tree > args.limit_mib * mib:
        sys.exit("too large for one call: see docs/GPU.md")


if __name__ == "__main__":
    main()
