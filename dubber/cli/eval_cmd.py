"""``dub eval landmarks|renderer``: score the models on held-out speakers, with baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli.output import print_json, stderr

eval_app = typer.Typer(help="Measure quality on held-out speakers.", no_args_is_help=True)


@eval_app.command("landmarks")
def eval_landmarks_command(
    data: Path = typer.Option(..., "--data", help="Cache folder written by `dub prep`.", show_default=False),
    weights: Path = typer.Option(
        None, "--weights", help="A landmark model folder (config.json + model.safetensors); default: the shipped one."
    ),
    split: str = typer.Option("dev", "--split", help="Which split of the cache to score."),
    align_dir: Path | None = typer.Option(None, "--align-dir", help="GRID .align files, for the silence check."),
    report: Path | None = typer.Option(None, "--report", help="Write the full report (per clip) as JSON here."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """LMD, mouth-opening correlation and velocity error against the video's own landmarks."""
    from dubber.data.cache import PrepCache
    from dubber.evaluation.landmark_eval import LandmarkEvalOptions, evaluate_landmarks
    from dubber.weights import load_landmark_model

    model = load_landmark_model(weights)
    result = evaluate_landmarks(model, PrepCache(data), LandmarkEvalOptions(split=split, align_dir=align_dir))
    if report is not None:
        result.write(report)
    if json_out:
        summary = result.to_dict()
        summary.pop("clips")
        print_json(summary)
        return
    stderr.print(result.markdown())
    for name, bar in result.bars.items():
        value = "-" if bar["value"] is None else f"{bar['value']:.4f}"
        stderr.print(f"{name}: {value} (target {bar['target']}) {'PASS' if bar['passes'] else 'FAIL'}")


@eval_app.command("renderer")
def eval_renderer_command(
    data: Path = typer.Option(..., "--data", help="Cache folder written by `dub prep`.", show_default=False),
    weights: Path = typer.Option(
        None, "--weights", help="A renderer folder (renderer.json + unet/); default: the shipped one."
    ),
    steps: int = typer.Option(8, "--steps", min=1, help="Denoising steps."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="ddim or dpm++ (default: the model's)."),
    guidance: float = typer.Option(1.0, "--guidance", min=0.0, help="Classifier-free guidance scale (1: off)."),
    per_clip: int = typer.Option(3, "--per-clip", min=1, help="Frames scored per clip."),
    per_speaker: int = typer.Option(4, "--per-speaker", min=1, help="Clips scored per speaker at most."),
    seed: int = typer.Option(0, "--seed"),
    grid: Path | None = typer.Option(None, "--grid", help="Write a PNG grid of the first samples here."),
    report: Path | None = typer.Option(None, "--report", help="Write the full report (per sample) as JSON here."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """Lower-face PSNR/SSIM and landmark-following LMD on dev crops, with the reference-paste baseline."""
    from dubber.data.cache import PrepCache
    from dubber.errors import InputError
    from dubber.evaluation.renderer_eval import build_dev_samples, detect_content, evaluate_renderer
    from dubber.training.renderer_trainer import dev_clips_for_eval, face_backend
    from dubber.weights import load_renderer

    renderer = load_renderer(weights)
    if scheduler is not None:
        from dubber.render.renderer_pipeline import SCHEDULERS

        if scheduler not in SCHEDULERS:
            raise typer.BadParameter(f"choose from {', '.join(SCHEDULERS)}", param_hint="--scheduler")
        renderer.scheduler_name = scheduler
    cache = PrepCache(data)
    clips = dev_clips_for_eval(cache, renderer.size, per_speaker, 5)
    if not clips:
        raise InputError(data, "no usable dev clips in the cache")
    dev = build_dev_samples(clips, renderer.n_refs, per_clip)
    train_speakers = {r.speaker for split in ("train", "video_only") for r in cache.records(split)}
    backend = face_backend()
    result, generated = evaluate_renderer(
        renderer, dev, steps=steps, seed=seed, backend=backend, train_speakers=train_speakers, guidance=guidance
    )
    if grid is not None:
        import numpy as np

        from dubber.evaluation.grids import save_grid

        n = min(12, len(dev))
        pick = np.linspace(0, len(dev) - 1, n).round().astype(int)
        found = detect_content(generated[pick], backend) if backend is not None else None
        save_grid(grid, dev.targets[pick], generated[pick], dev.landmarks[pick], found)
    if report is not None:
        result.write(report)
    if json_out:
        summary = result.to_dict()
        summary.pop("per_sample")
        print_json(summary)
        return
    stderr.print(result.markdown())
    for name, bar in result.bars.items():
        stderr.print(f"{name}: {bar} {'PASS' if bar['pass'] else 'FAIL'}")
