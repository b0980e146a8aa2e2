"""``dub env``: versions and devices, to paste into bug reports."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import typer

from dubber.cli.output import print_json

_PACKAGES = ("dubber", "torch", "av", "mediapipe", "numpy", "opencv-python-headless", "typer", "rich")


def collect_env() -> dict:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}
    try:
        import av

        info["ffmpeg"] = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    except ImportError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        info["cuda"] = []
    return info


def env_command(json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """Print versions and devices (for bug reports)."""
    info = collect_env()
    if json_out:
        print_json(info)
        return
    # The report is the command's output: stdout, so `dub env > env.txt` keeps it.
    print(f"python {info['python']} on {info['platform']}")
    for k, v in info["packages"].items():
        print(f"  {k:24s} {v or 'not installed'}")
    for k, v in info.get("ffmpeg", {}).items():
        print(f"  {k:24s} {v}")
    print(f"  {'torch threads':24s} {info.get('torch_threads', '-')}")
    print(f"  {'cuda devices':24s} {', '.join(info['cuda']) or 'none'}")
