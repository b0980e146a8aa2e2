"""``dub sync VIDEO... [--audio AUDIO]``: how well each video's mouth follows its sound, and the offset between them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dubber.cli import dub_options as o
from dubber.cli.output import is_quiet, print_json, stderr

EXIT_BELOW = 1  # a --min-match that some video did not reach
EXIT_PARTIAL = 3  # some of several videos could not be checked


def _offset_words(report) -> str:
    frames, seconds = report.reading.offset, report.offset_seconds
    if frames is None or seconds is None:
        return ""
    if frames == 0:
        return "picture and sound in time"
    side = "behind" if frames > 0 else "ahead of"
    edge = f" (the widest searched: try --max-offset {2 * report.max_offset:g})" if report.at_search_edge else ""
    count = f"{abs(frames)} frame{'s' if abs(frames) > 1 else ''}"
    return f"the picture {count} ({abs(seconds) * 1e3:.0f} ms) {side} the sound{edge}"


def summary_line(report) -> str:
    sound = "its own sound" if report.audio is None else str(report.audio)
    match = "" if report.match is None else f" (match {report.match:.2f})"
    offset = _offset_words(report)
    return (
        f"{report.video} against {sound}: {report.verdict}{match}{'; ' + offset if offset else ''}; "
        f"{report.frames} frames compared, {report.frames_with_face} with a face"
    )


def _windows_table(report) -> Table:
    from dubber.pipeline.sync_check import FOLLOWS

    t = Table(title=f"{report.video.name}: windows", title_justify="left")
    for name in ("from", "to", "match", "offset"):
        t.add_column(name, justify="right")
    for w in report.windows:
        r = w.reading
        match = "-" if r.match is None else f"{r.match:.2f}"
        if r.match is not None and r.match < FOLLOWS:
            match = f"[red]{match}[/red]"
        offset = "-" if r.offset is None else f"{r.offset / report.fps * 1e3:+.0f} ms"
        t.add_row(f"{w.start:.1f} s", f"{w.end:.1f} s", match, offset)
    return t


def sync_command(
    videos: list[Path] = typer.Argument(..., help="Videos to check (one or more).", show_default=False),
    audio: Path | None = typer.Option(
        None,
        "--audio",
        "-a",
        help="The sound to check the mouth against, timed from the video's first frame (default: the video's own; "
        "one video only).",
        show_default=False,
    ),
    max_offset: float = typer.Option(
        0.16,
        "--max-offset",
        min=0.04,
        max=2.0,
        help="Seconds either way to look for the offset between picture and sound (wider: more chance matches).",
    ),
    window: float = typer.Option(10.0, "--window", min=2.0, max=600.0, help="Seconds of each window read alone."),
    min_match: float | None = typer.Option(
        None,
        "--min-match",
        min=-1.0,
        max=1.0,
        help="Exit 1 when a video's match is below this (or cannot be read): a gate for a batch of dubs.",
        show_default=False,
    ),
    face: str = typer.Option(
        "0", "--face", help="Which face to check: 0 the largest, 1 the next, ...; left or right (as for a dub)."
    ),
    weights: str = o.WEIGHTS,
    device: str = o.DEVICE,
    dtype: str = o.DTYPE,
    runtime: str = o.RUNTIME,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per video on stdout."),
) -> None:
    """Measure how well each video's mouth follows its sound (its own or --audio) and how far apart picture and
    sound are, over the whole video and over windows of it (docs/DUBBING.md "Checking sync")."""
    from dubber.errors import InputError
    from dubber.pipeline.options import DubOptions
    from dubber.pipeline.sync_check import check_sync_inputs

    if audio is not None and len(videos) > 1:
        raise typer.BadParameter("--audio goes with one video; several videos are each checked with their own sound")
    index, side = o.parse_face(face)
    if len(videos) == 1:  # a bad file is named before the weights load
        check_sync_inputs(videos[0], audio)
    pipe = o.load_pipeline(weights, device, dtype, DubOptions(face_index=index, face_side=side), runtime)
    o.threads_for(pipe)
    show = stderr.is_terminal and not is_quiet()
    failed = below = 0
    for n, video in enumerate(videos, 1):
        name = video.name if len(videos) == 1 else f"[{n}/{len(videos)}] {video.name}"
        try:
            with o.DubProgress(name, enabled=show) as progress:
                report = pipe.check_sync(video, audio, max_offset=max_offset, window=window, progress=progress)
        except InputError as error:
            if len(videos) == 1:
                raise
            failed += 1
            if json_out:
                print_json({"video": str(video), "error": str(error)})
            stderr.print(f"[red]failed:[/red] {error}", markup=True, highlight=False, soft_wrap=True)
            continue
        if min_match is not None and (report.match is None or report.match < min_match):
            below += 1
        if json_out:
            print_json(report.to_dict())
        elif not is_quiet():
            stderr.print(summary_line(report), soft_wrap=True, highlight=False)
            if len(report.windows) > 1:
                stderr.print(_windows_table(report))
            for k, reading in enumerate(report.people):
                match = "too few frames" if reading.match is None else f"match {reading.match:.2f}"
                stderr.print(f"  person {k}: {match}", highlight=False)
    if below:
        stderr.print(f"{below} of {len(videos)} below --min-match {min_match:g}", highlight=False)
        raise typer.Exit(EXIT_BELOW)
    if failed:
        raise typer.Exit(EXIT_PARTIAL)
