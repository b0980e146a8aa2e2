"""``dub cache list|clear``: the adapted models kept so that a video adapts once (``--adapt``)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dubber.cli.output import print_json

cache_app = typer.Typer(help="Adapted models kept between dubs (--adapt).", no_args_is_help=True)
DIR = typer.Option(None, "--cache-dir", help="The cache folder (default: DUB_CACHE or the user's cache folder).")


@cache_app.command("list")
def list_command(cache_dir: Path | None = DIR, json_out: bool = typer.Option(False, "--json")) -> None:
    """Each kept adaptation: the video it was made for, when, its size."""
    from dataclasses import asdict

    from dubber.pipeline.adaptation_cache import AdaptationCache

    cache = AdaptationCache(cache_dir)
    entries = cache.entries()
    if json_out:
        print_json({"cache": str(cache.root), "entries": [asdict(e) for e in entries]})
        return
    print(f"{cache.root}: {len(entries)} adapted model(s), {sum(e.bytes for e in entries) / 1e6:.1f} MB")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created))
        print(f"  {when}  {e.bytes / 1e6:5.1f} MB  {e.seconds:5.1f} s  {e.video}")


@cache_app.command("clear")
def clear_command(cache_dir: Path | None = DIR) -> None:
    """Remove every kept adaptation."""
    from dubber.pipeline.adaptation_cache import AdaptationCache

    cache = AdaptationCache(cache_dir)
    print(f"{cache.root}: removed {cache.clear()} adapted model(s)")
