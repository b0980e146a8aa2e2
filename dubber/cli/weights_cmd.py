"""``dub weights list|verify``: the shipped checkpoints and their checksums."""

from __future__ import annotations

import textwrap
from functools import partial

import typer
from rich.console import Console

from dubber.cli.output import print_json

weights_app = typer.Typer(help="The shipped model weights.", no_args_is_help=True)


_HEADLINE = "unseen_model_"  # the metrics that answer "how good on speakers it never saw"


@weights_app.command("list")
def list_command(json_out: bool = typer.Option(False, "--json", help="Print the manifest on stdout.")) -> None:
    """Models in the weights manifest: size, precision, what trained them and how they measured on unseen speakers
    (every metric: --json)."""
    from dubber.weights import read_manifest, weights_root

    manifest = read_manifest()
    if json_out:
        print_json(manifest)
        return
    out = Console(highlight=False)  # the listing is the command's output: stdout, readable at 80 columns
    indent = partial(textwrap.fill, width=max(40, out.width - 1), initial_indent="  ", subsequent_indent="    ")
    out.print(f"weights in {weights_root()}", soft_wrap=True)
    for name, e in manifest.get("models", {}).items():
        size = sum(f["size"] for f in e["files"].values())
        out.print(f"[bold]{name}[/bold]  {size / 1e6:.1f} MB, {len(e['files'])} files, {e.get('dtype', 'float32')}")
        origins = [e.get("training", {}).get("data") or e.get("origin")]
        origins += [m["data"] for m in e.get("members", {}).values() if "data" in m]
        for origin in dict.fromkeys(o for o in origins if o):  # members trained on the same data say it once
            out.print(indent(f"trained on: {origin}"), soft_wrap=True, markup=False)
        headline = {k.removeprefix(_HEADLINE): v for k, v in e.get("metrics", {}).items() if k.startswith(_HEADLINE)}
        if headline:
            shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in headline.items())
            out.print(indent(f"unseen speakers: {shown}"), soft_wrap=True, markup=False)


@weights_app.command("verify")
def verify_command(json_out: bool = typer.Option(False, "--json", help="Print the checks on stdout.")) -> None:
    """Re-hash every shipped file against the manifest (exit 1 when one is missing or damaged)."""
    from dataclasses import asdict

    from dubber.weights import WeightsError, read_manifest, verify_entry

    manifest = read_manifest()
    checks = {name: verify_entry(name, manifest=manifest) for name in manifest.get("models", {})}
    if json_out:
        print_json({n: [asdict(c) for c in cs] for n, cs in checks.items()})
    else:
        for name, cs in checks.items():
            for c in cs:
                print(f"{'ok ' if c.ok else 'BAD'} {name}: {c.path} {c.problem}".rstrip())
    bad = [c for cs in checks.values() for c in cs if not c.ok]
    if bad:
        raise WeightsError(f"{len(bad)} weight file(s) failed verification, first: {bad[0].path} ({bad[0].problem})")
