"""Renderer throughput: aligned 128 px crops rendered per second, by denoising steps and batch size.

    make bench-renderer    # or: .venv/bin/python benchmarks/bench_renderer.py [--weights DIR] [--device cuda]

Times what inference does: the reference tokens are computed once (a video's references do not change) and each
batch of crops runs ``steps`` UNet evaluations plus the scheduler. Uses the shipped renderer when present (timing
does not depend on the weights' values, only on the config). Every cell is the best of ``--repeats`` runs after a
warm-up. Results go to stdout as JSON and to benchmarks/results/renderer_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from dubber.models.renderer_unet import RendererUNet, renderer_config
from dubber.render.renderer_pipeline import FaceRenderer

ROOT = Path(__file__).resolve().parents[1]


def load(weights: str | None, device: str, dtype: torch.dtype) -> tuple[FaceRenderer, str]:
    from dubber.weights import WeightsError, load_renderer

    try:
        return load_renderer(weights, device=device, dtype=dtype), weights or "shipped default/renderer"
    except (WeightsError, OSError) as exc:
        print(f"no shipped renderer ({exc}); timing a random `small`")
        torch.manual_seed(0)
        return FaceRenderer(RendererUNet(**renderer_config("small")).to(device, dtype)), "random small"


def time_cell(renderer: FaceRenderer, batch: int, steps: int, repeats: int) -> float:
    s = renderer.size
    crops = torch.rand(batch, 3, s, s) * 2 - 1
    lmk = torch.rand(batch, 131, 2) * 0.5 + 0.25
    refs, ref_lmk = torch.rand(renderer.n_refs, 3, s, s) * 2 - 1, torch.rand(renderer.n_refs, 131, 2) * 0.5 + 0.25
    tokens = renderer.encode_references(refs, ref_lmk)

    def render() -> None:
        renderer(crops, lmk, refs, ref_lmk, reference_tokens=tokens, steps=steps)

    render()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if renderer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        render()
        if renderer.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return batch / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--steps", default="1,4,8,25")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    dtype_name = args.dtype if args.dtype != "auto" else ("float16" if args.device.startswith("cuda") else "float32")
    dtype = getattr(torch, dtype_name)
    renderer, source = load(args.weights, args.device, dtype)
    steps = [int(x) for x in args.steps.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    table = {}
    for st in steps:
        for b in batches:
            table[f"steps{st}_batch{b}"] = round(time_cell(renderer, b, st, args.repeats), 2)
            print(f"steps {st:>2} batch {b:>2}: {table[f'steps{st}_batch{b}']:.2f} crops/s", flush=True)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    result = {
        "command": "python benchmarks/bench_renderer.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "device": device_name,
        "cpu_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "dtype": dtype_name,
        "renderer": source,
        "config": {k: renderer.unet.config[k] for k in ("sample_size", "patch", "block_channels", "n_refs")},
        "scheduler": renderer.scheduler_name,
        "crops_per_second": table,
    }
    out = ROOT / "benchmarks" / "results" / f"renderer_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
