"""``dub weights list|verify``: the shipped checkpoints and their checksums."""

from __future__ import annotations

import typer
from rich.table import Table

from dubber.cli.output import print_json, stderr

weights_app = typer.Typer(help="The shipped model weights.", no_args_is_help=True)


@weights_app.command("list")
def list_command(json_out: bool = typer.Option(False, "--json", help="Print the manifest on stdout.")) -> None:
    """Models in the weights manifest, with size and what trained them."""
    from dubber.weights import read_manifest, weights_root

    manifest = read_manifest()
    if json_out:
        print_json(manifest)
        return
    t = Table(title=f"weights in {weights_root()}", title_justify="left")
    for col in ("model", "size", "trained on", "dev metrics"):
        t.add_column(col)
    for name, e in manifest.get("models", {}).items():
        size = sum(f["size"] for f in e["files"].values())
        metrics = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in e.get("metrics", {}).items()
        )
        t.add_row(name, f"{size / 1e6:.1f} MB", str(e.get("training", {}).get("data", "-")), metrics or "-")
    stderr.print(t)


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
                stderr.print(f"{'ok ' if c.ok else 'BAD'} {name}: {c.path} {c.problem}")
    bad = [c for cs in checks.values() for c in cs if not c.ok]
    if bad:
        raise WeightsError(f"{len(bad)} weight file(s) failed verification, first: {bad[0].path} ({bad[0].problem})")
