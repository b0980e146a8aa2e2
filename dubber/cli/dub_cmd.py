"""``dub VIDEO --audio AUDIO``: the main job, a thin layer over ``DubbingPipeline``."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli import dub_options as o
from dubber.cli.output import configure_logging, is_quiet, stderr


def dub_command(
    video: Path = typer.Argument(..., help="Video (or still image) whose speaker is dubbed.", show_default=False),
    audio: Path = typer.Option(
        ..., "--audio", "-a", help="The new speech (any audio or video file).", show_default=False
    ),
    speech: Path | None = typer.Option(
        None,
        "--speech",
        help="The voice the mouth follows, where --audio mixes it with music or effects: a dialogue stem on the same "
        "timeline (the output carries --audio).",
        show_default=False,
    ),
    subtitles: Path | None = typer.Option(
        None,
        "--subtitles",
        help="Subtitles of the new speech (.srt, .ass, .vtt), added as a track timed from where it starts.",
        show_default=False,
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Output video (.mp4/.mov/.mkv: H.264; .webm: VP9 and Opus). Default: <stem>.dubbed.mp4 beside the input.",
        show_default=False,
    ),
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
    start: str = o.START,
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
    json_out: bool = o.JSON_OUT,
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-vv: debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only."),
) -> None:
    """Dub one video (or a still image) so the speaker's mouth says the new audio."""
    if verbose or quiet:
        configure_logging(-1 if quiet else verbose)
    from dubber.media.dub_inputs import check_dub_files

    # A bad file is named in a second, before torch and the models load.
    check_dub_files(video, audio, output, overwrite=overwrite, speech=speech, subtitles=subtitles)
    options = o.dub_options(
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        fit=fit,
        keep_rest=keep_rest,
        start=start,
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
    pipe = o.load_pipeline(weights, device, dtype, options, runtime)
    o.threads_for(pipe)
    with o.DubProgress(video.name, enabled=stderr.is_terminal and not is_quiet()) as progress:
        result = pipe(video, audio, output, speech=speech, subtitles=subtitles, progress=progress)
    o.show_result(result, json_out)
