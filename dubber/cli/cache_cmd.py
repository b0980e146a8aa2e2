"""``dub cache list|clear``: the adapted models kept so that a video adapts once (``--adapt``), and the ONNX
exports ``--runtime onnx`` made of a bundle."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dubber.cli.output import print_json

cache_app = typer.Typer(
    help="Adapted models (--adapt) and ONNX exports (--runtime onnx) kept between dubs.", no_args_is_help=True
)
DIR = typer.Option(None, "--cache-dir", help="The cache folder (default: DUB_CACHE or the user's cache folder).")


@cache_app.command("list")
def list_command(cache_dir: Path | None = DIR, json_out: bool = typer.Option(False, "--json")) -> None:
    """Each kept adaptation (the video it was made for, when, its size) and each ONNX export."""
    from dataclasses import asdict

    from dubber.pipeline.adaptation_cache import AdaptationCache
    from dubber.runtime.onnx_bundle import cached_exports

    cache = AdaptationCache(cache_dir)
    entries = cache.entries()
    exports = cached_exports(cache.root)
    if json_out:
        onnx = [{"folder": str(f), "bytes": b} for f, b in exports]
        print_json({"cache": str(cache.root), "entries": [asdict(e) for e in entries], "onnx_exports": onnx})
        return
    print(f"{cache.root}: {len(entries)} adapted model(s), {sum(e.bytes for e in entries) / 1e6:.1f} MB")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created))
        print(f"  {when}  {e.bytes / 1e6:5.1f} MB  {e.seconds:5.1f} s  {e.video}")
    if exports:
        print(f"{len(exports)} ONNX export(s), {sum(b for _, b in exports) / 1e6:.1f} MB")
        for folder, size in exports:
            print(f"  {size / 1e6:5.1f} MB  {folder}")


@cache_app.command("clear")
def clear_command(cache_dir: Path | None = DIR) -> None:
    """Remove every kept adaptation and ONNX export."""
    from dubber.pipeline.adaptation_cache import AdaptationCache
    from dubber.runtime.onnx_bundle import cached_exports

    cache = AdaptationCache(cache_dir)
    exports = len(cached_exports(cache.root))
    print(f"{cache.root}: removed {cache.clear()} adapted model(s) and {exports} ONNX export(s)")
