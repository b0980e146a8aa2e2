"""Re-save a trained renderer in half precision and in files of at most --shard-mib each, for a channel that
carries files only so large (a GPU machine's results: 16 MiB a file, docs/GPU.md "Training there").

    python scripts/export_renderer.py RUN/model $OUT/renderer --shard-mib 15

The folder loads as any renderer folder (`--weights`-style bundles, `dub train renderer --init-from`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from dubber.render import FaceRenderer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="a renderer folder (renderer.json + unet/)")
    ap.add_argument("out", type=Path, help="the folder to write (new)")
    ap.add_argument("--shard-mib", type=float, default=15.0)
    ap.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists already")
    renderer = FaceRenderer.from_pretrained(args.model)
    renderer.save_pretrained(args.out, dtype=getattr(torch, args.dtype), max_shard_mib=args.shard_mib)
    if (args.model / "training.json").is_file():  # how it was trained, beside the weights
        shutil.copy2(args.model / "training.json", args.out / "training.json")
    for f in sorted(args.out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size / (1 << 20):7.2f} MiB  {f.relative_to(args.out)}")


if __name__ == "__main__":
    main()
