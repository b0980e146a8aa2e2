"""``dub bench VIDEO --audio AUDIO``: frames/s per stage and end to end, peak memory, ratio to a plain re-encode."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dubber.cli import dub_options as o
from dubber.cli.output import print_json, stderr


def bench_command(
    video: Path = typer.Argument(..., help="Video to dub (nothing is kept).", show_default=False),
    audio: Path = typer.Option(..., "--audio", "-a", help="Speech to dub it with.", show_default=False),
    weights: str = o.WEIGHTS,
    device: str = o.DEVICE,
    dtype: str = o.DTYPE,
    runtime: str = o.RUNTIME,
    steps: int | None = o.STEPS,
    batch_size: str = o.BATCH,
    overlap: bool = o.OVERLAP,
    json_out: bool = o.JSON_OUT,
) -> None:
    """Measure the dub's speed per stage and its peak memory, against a plain decode + encode of the same clip."""
    from dubber.pipeline.benchmark import benchmark

    options = o.dub_options(
        steps=steps,
        seed=0,
        batch_size=batch_size,
        fit="pingpong",
        keep_rest=False,
        face=0,
        fps=25.0,
        keep_original_audio=False,
        crf=18,
        preset="medium",
        overwrite=True,
        overlap=overlap,
    )
    pipe = o.load_pipeline(weights, device, dtype, options, runtime)
    o.threads_for(pipe)
    report = benchmark(pipe, video, audio)
    if json_out:
        print_json(report.to_dict())
        return
    t = Table(
        title=f"{video.name}: {report.frames} frames {report.width}x{report.height}, {report.steps} steps, "
        f"{report.device}, {report.runtime}",
        title_justify="left",
    )
    t.add_column("stage")
    t.add_column("seconds", justify="right")
    t.add_column("frames/s", justify="right")
    for stage, secs in report.stage_seconds.items():
        t.add_row(stage, f"{secs:.2f}", f"{report.stage_fps.get(stage, 0):.1f}")
    t.add_row("[bold]end to end", "", f"[bold]{report.end_to_end_fps:.2f}")
    t.add_row("plain decode+encode", "", f"{report.plain_reencode_fps:.1f}")
    stderr.print(t)
    gpu = f", GPU peak {report.peak_gpu_mb:.0f} MiB" if report.peak_gpu_mb is not None else ""
    stderr.print(
        f"{report.slowdown_vs_reencode:.1f}x the time of a plain re-encode; stages busy {report.overlap:.2f}x the "
        f"wall time ({report.wall_seconds:.1f} s); CPU {report.cpu_ms_per_frame:.0f} ms a frame on "
        f"{report.cores_busy:.2f} cores (re-encode {report.reencode_cpu_ms_per_frame:.0f} ms); peak memory "
        f"{report.peak_rss_mb:.0f} MiB{gpu}"
    )
    phases = ", ".join(f"{name} {p['seconds']:.1f} s on {p['cores']:.2f} cores" for name, p in report.phases.items())
    stderr.print(f"phases: {phases}")
    stderr.print(f"faces redrawn: {report.face_frames}, by the renderer network {report.network_frames}")
