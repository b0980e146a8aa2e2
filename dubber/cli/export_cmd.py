"""``dub export onnx``: the weights as ONNX graphs for onnxruntime (``--runtime onnx``) or other ONNX runtimes."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli import dub_options as o
from dubber.cli.output import print_json, stderr

export_app = typer.Typer(help="Export the models to other runtimes.", no_args_is_help=True)


@export_app.command("onnx")
def onnx_command(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write (graphs + onnx_manifest.json).", show_default=False
    ),
    weights: str = o.WEIGHTS,
    opset: int = typer.Option(17, "--opset", min=14, max=21, help="ONNX opset."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a folder that is not empty."),
    json_out: bool = o.JSON_OUT,
) -> None:
    """The landmark completer (each ensemble member), its speech encoder and the renderer (reference tokens,
    conditioning, one denoiser step) as float32 ONNX graphs with dynamic batch; each checked against torch."""
    from dubber.export import export_onnx

    result = export_onnx(weights, out, opset=opset, overwrite=overwrite)
    if json_out:
        print_json({"folder": str(result.folder), "seconds": round(result.seconds, 2), **result.to_dict()})
        return
    for name, graph in result.graphs.items():
        stderr.print(f"{name}: {graph.file}, max |onnxruntime - torch| {graph.max_abs_diff:.1e}")
    stderr.print(
        f"{len(result.graphs)} graphs in {result.folder} ({result.seconds:.1f} s); "
        f"dub with --runtime onnx --weights {result.folder}"
    )
