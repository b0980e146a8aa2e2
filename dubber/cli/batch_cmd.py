"""``dub batch``: many dubs with the models loaded once; exit 3 when some items failed."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli import dub_options as o
from dubber.cli.output import is_quiet, print_json, stderr
from dubber.errors import InputError

EXIT_PARTIAL = 3


def batch_command(
    manifest: Path | None = typer.Argument(
        None,
        help="CSV (header video,audio[,output][,start][,person][,speech][,subtitles][,language]) or JSON lines with "
        "the same keys.",
        show_default=False,
    ),
    videos: Path | None = typer.Option(
        None, "--videos", help="Folder of videos/images (instead of a manifest).", show_default=False
    ),
    audio: Path | None = typer.Option(
        None, "--audio", help="Folder of audio files paired with --videos by stem.", show_default=False
    ),
    speech: Path | None = typer.Option(
        None,
        "--speech",
        help="With --videos: a folder of speech stems paired by stem, the voices the mouths follow where the --audio "
        "files are mixes (a manifest names them in its speech column).",
        show_default=False,
    ),
    subtitles: Path | None = typer.Option(
        None,
        "--subtitles",
        help="With --videos: a folder of subtitle files (.srt, .ass, .vtt) of the new speech, paired by stem (a "
        "manifest names them in its subtitles column).",
        show_default=False,
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Output folder (relative subfolders are kept). Default: beside each input.",
        show_default=False,
    ),
    container: str = typer.Option(
        "mp4", "--format", help="Container of the outputs the batch names: mp4, mov, mkv or webm (VP9 and Opus)."
    ),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave items whose output exists."),
    weights: str = o.WEIGHTS,
    device: str = o.DEVICE,
    dtype: str = o.DTYPE,
    runtime: str = o.RUNTIME,
    steps: int | None = o.STEPS,
    references: str = o.REFERENCES,
    reference_blend: bool = o.REFERENCE_BLEND,
    adapt: str = o.ADAPT,
    adapt_seconds: float = o.ADAPT_SECONDS,
    cache_dir: Path | None = o.CACHE_DIR,
    seed: int = o.SEED,
    batch_size: str = o.BATCH,
    fit: str = o.FIT,
    keep_rest: bool = o.KEEP_REST,
    face: str = o.FACE,
    person: int | None = o.PERSON,
    only_speaking: bool = o.ONLY_SPEAKING,
    face_backend: str = o.FACE_BACKEND,
    face_models: Path | None = o.FACE_MODELS,
    fps: float = o.FPS,
    keep_original_audio: bool = o.KEEP_ORIGINAL,
    language: str | None = o.LANGUAGE,
    source_subtitles: bool = o.SOURCE_SUBTITLES,
    crf: int = o.CRF,
    preset: str = o.PRESET,
    overwrite: bool = o.OVERWRITE,
    source_detail: bool = o.SOURCE_DETAIL,
    articulation: bool = o.ARTICULATION,
    overlap: bool = o.OVERLAP,
    json_out: bool = typer.Option(False, "--json", help="One JSON line per item, then a summary line, on stdout."),
    ray_address: str | None = typer.Option(
        None,
        "--ray",
        help="Spread the items over a Ray cluster: local (a Ray started here), auto (the cluster this machine is in) "
        "or its address (ray://HEAD:10001). pip install 'dubber[cluster]'; README \"Batches on a Ray cluster\".",
        show_default=False,
    ),
    ray_workers: int | None = typer.Option(
        None, "--ray-workers", min=1, help="Workers (default: as many as free CPUs or GPUs allow).", show_default=False
    ),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus-per-worker", min=0.1, help="CPU cores per CPU worker."),
    retries: int = typer.Option(1, "--retries", min=0, max=10, help="With --ray: attempts after a worker died."),
) -> None:
    """Dub many videos: from a manifest, or --videos DIR --audio DIR paired by file stem."""
    from dubber.pipeline.batch import (
        LastAnalysis,
        items_from_folders,
        items_from_manifest,
        output_suffix,
        run_item,
        shares_video,
    )

    if (manifest is None) == (videos is None) or (videos is None) != (audio is None):
        raise InputError(None, "give either a manifest, or --videos DIR together with --audio DIR")
    if speech is not None and videos is None:
        raise InputError(
            speech, "--speech DIR pairs stems with --videos DIR; a manifest names them in its speech column"
        )
    if subtitles is not None and videos is None:
        raise InputError(
            subtitles, "--subtitles DIR pairs files with --videos DIR; a manifest names them in its subtitles column"
        )
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file; --output must be a folder for a batch")
    suffix = output_suffix(container)
    if manifest:
        items = items_from_manifest(manifest, out_dir, suffix)
    else:
        items = items_from_folders(videos, audio, out_dir, suffix, speech, subtitles)
    options = o.dub_options(
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        fit=fit,
        keep_rest=keep_rest,
        face=face,
        person=person,
        only_speaking=only_speaking,
        fps=fps,
        keep_original_audio=keep_original_audio,
        language=language,
        source_subtitles=source_subtitles,
        crf=crf,
        preset=preset,
        overwrite=overwrite,
        references=references,
        reference_blend=reference_blend,
        adapt=adapt,
        adapt_seconds=adapt_seconds,
        cache_dir=cache_dir,
        face_backend=face_backend,
        face_models=face_models,
        overlap=overlap,
        source_detail=source_detail,
        articulation=articulation,
    )
    counts = {"ok": 0, "skipped": 0, "failed": 0}

    def report(n: int, outcome) -> None:
        tag = f"[{n}/{len(items)}]"
        counts[outcome.status] += 1
        if json_out:
            print_json(outcome.to_dict())
        elif outcome.status == "failed":  # an error: shown under -q too
            stderr.print(f"{tag} [red]failed:[/red] {outcome.error}", markup=True, highlight=False, soft_wrap=True)
        elif not is_quiet():
            stderr.print(f"{tag} {outcome.status}: {outcome.item.output}", soft_wrap=True)

    try:
        if ray_address is not None:
            from dubber.pipeline.ray_batch import PipelineSpec, RaySettings, run_on_ray

            gpu = True if device.startswith("cuda") else False if device == "cpu" else None  # None: the cluster's
            settings = RaySettings(ray_address, ray_workers, ray_cpus, gpu, retries)
            spec = PipelineSpec(weights, device, dtype, runtime, options)
            run_on_ray(
                items,
                spec,
                settings,
                skip_existing=skip_existing,
                overwrite=overwrite,
                on_result=lambda i, outcome: report(i + 1, outcome),
            )
        else:
            pipe = o.load_pipeline(weights, device, dtype, options, runtime)
            show = stderr.is_terminal and not is_quiet()
            analyses = LastAnalysis()  # items in a row that dub one video track it once
            for n, item in enumerate(items, 1):
                reuse = analyses if shares_video(items, n - 1) else None
                if reuse is None:
                    analyses.forget()
                o.threads_for(pipe)  # per item: what else holds the cores changes over a batch
                with o.DubProgress(f"[{n}/{len(items)}] {item.video.name}", enabled=show) as progress:
                    outcome = run_item(
                        pipe,
                        item,
                        skip_existing=skip_existing,
                        overwrite=overwrite,
                        progress=progress,
                        analyses=reuse,
                    )
                report(n, outcome)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the finished outputs stay; say what was done
        _summary(counts, len(items), json_out, interrupted=True)
        raise
    _summary(counts, len(items), json_out)
    if counts["failed"]:
        raise typer.Exit(EXIT_PARTIAL)


def _summary(counts: dict[str, int], items: int, json_out: bool, *, interrupted: bool = False) -> None:
    left = items - sum(counts.values())
    if json_out:
        print_json(
            {
                "summary": True,
                "items": items,
                **counts,
                **({"interrupted": True, "not_done": left} if interrupted else {}),
            }
        )
    elif not is_quiet() or interrupted:
        end = f", {left} not done (interrupted)" if interrupted else ""
        stderr.print(f"batch: {counts['ok']} dubbed, {counts['skipped']} skipped, {counts['failed']} failed{end}")
