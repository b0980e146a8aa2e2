"""``dub prep SOURCE -o CACHE``: clips -> aligned crops, landmarks, transforms, mel and flags, with a manifest."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.table import Table

from dubber.cli.output import frame_progress, print_json, stderr


def _summary_table(summary) -> Table:
    t = Table(title=f"prepared cache {summary.cache}", title_justify="left")
    for col in ("split", "clips", "speakers", "minutes", "usable frames", "with audio"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for split, s in summary.splits.items():
        t.add_row(
            split,
            str(s["clips"]),
            str(s["speakers"]),
            f"{s['minutes']:.1f}",
            str(s["usable_frames"]),
            str(s["with_audio"]),
        )
    return t


def prep_command(
    source: Path = typer.Argument(
        ..., help="A folder of clips, or a manifest CSV (path[,split,speaker]).", show_default=False
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Cache folder to write (resumed when it exists).", show_default=False
    ),
    splits: str | None = typer.Option(None, "--splits", help="Only these splits, comma-separated (e.g. train,dev)."),
    size: list[int] = typer.Option([128], "--size", help="Crop size(s) to store; repeat for several (128, 256)."),
    jobs: int = typer.Option(max(1, (os.cpu_count() or 1)), "--jobs", "-j", min=1, help="Clips prepared in parallel."),
    dev_fraction: float = typer.Option(
        0.1, "--dev-fraction", min=0.0, max=1.0, help="For a plain folder: share of speakers put in dev."
    ),
    speech: bool = typer.Option(
        True,
        "--speech/--no-speech",
        help="Also store the shipped speech encoder's features of each clip (block 3 of Whisper tiny.en: what the "
        "shipped speech-input landmark completer reads).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """Prepare clips for training and evaluation (resumable: finished clips are skipped)."""
    from dubber.data import PrepOptions, prepare_dataset, read_sources
    from dubber.errors import InputError

    bad = [s for s in size if s < 32 or s > 1024 or s % 16]
    if bad:
        raise InputError(None, f"--size {bad[0]}: crop sizes must be multiples of 16 between 32 and 1024")
    wanted = {s.strip() for s in splits.split(",") if s.strip()} if splits else None
    sources = read_sources(source, wanted, dev_fraction)
    options = PrepOptions(sizes=tuple(sorted(set(size))))
    t0 = time.perf_counter()
    with frame_progress("preparing", stderr.is_terminal) as bar:
        task = bar.add_task("preparing clips", total=len(sources), rate="")

        def progress(rec, done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} clips/s")

        summary = prepare_dataset(sources, out, options, jobs=jobs, progress=progress)
        speech_made = _add_speech(out, bar) if speech else 0
    if json_out:
        print_json({**summary.to_dict(), "speech_features_made": speech_made})
        return
    stderr.print(_summary_table(summary))
    stderr.print(
        f"{summary.ok} clips ready, {summary.skipped} skipped; {summary.prepared_now} prepared now, "
        f"{summary.already_done} were already done; {summary.seconds:.0f} s with {summary.jobs} job(s)"
    )
    for reason, n in summary.skipped_reasons.items():
        stderr.print(f"  skipped {n}: {reason}")
    if speech:
        stderr.print(f"speech features: made for {speech_made} clips (the others had them or have no audio)")


def _add_speech(cache: Path, bar) -> int:
    """The shipped speech encoder's features for every prepared clip that lacks them (resumable too)."""
    from dubber.data import PrepCache
    from dubber.data.speech_cache import add_speech_features
    from dubber.models.speech_encoder import DEFAULT_SPEECH_ENCODER, DEFAULT_SPEECH_LAYER
    from dubber.weights import load_speech_encoder

    encoder = load_speech_encoder(DEFAULT_SPEECH_ENCODER)
    records = PrepCache(cache).records(with_audio=True)
    task = bar.add_task("speech features", total=len(records), rate="")
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - t0, 1e-9)
        bar.update(task, completed=done, total=total, rate=f"{rate:.1f} clips/s")

    return add_speech_features(cache, records, encoder, progress, layer=DEFAULT_SPEECH_LAYER)
