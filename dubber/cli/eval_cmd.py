"""``dub eval landmarks|renderer``: score the models on held-out speakers, with baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli.output import print_json, stderr

eval_app = typer.Typer(
    help="Measure quality on held-out speakers: `dub eval --data DIR_OR_MANIFEST --out REPORT_DIR` runs the whole dub "
    "(docs/QUALITY.md); `landmarks` and `renderer` score one model on a `dub prep` cache.",
    no_args_is_help=True,
)


@eval_app.callback(invoke_without_command=True)
def eval_dub_command(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", help="A folder of clips or a manifest CSV (path,split,speaker).", show_default=False
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Report folder: report.json, report.md, clips/, plots.", show_default=False
    ),
    weights: str = typer.Option("default", "--weights", "-w", help="Weights name or model folder."),
    split: str | None = typer.Option(None, "--split", help="Manifest split to score (default dev; a folder: all)."),
    per_speaker: int = typer.Option(0, "--per-speaker", min=0, help="At most this many clips per speaker (0: all)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Denoising steps (default: the weights' own)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option(
        "float32", "--dtype", help="The models' precision (float32 by default, so scores do not depend on the CPU)."
    ),
    preset: str = typer.Option("veryfast", "--preset", help="x264 preset of the scored outputs (CRF 18)."),
    protocol: str = typer.Option(
        "reconstruction",
        "--protocol",
        help="reconstruction (each clip re-dubbed with its own audio, and cross-dubbed with another speaker's) or "
        "split (each clip's first half dubbed with its second half's speech, scored against that half's mouth).",
    ),
    adapt: str = typer.Option(
        "off",
        "--adapt",
        help="With --protocol split: adapt the completer to each first half (on, auto, off); the "
        "report then scores the dub without it too.",
    ),
    cross: bool = typer.Option(True, "--cross/--no-cross", help="Also dub each clip with another speaker's audio."),
    videos: bool = typer.Option(True, "--videos/--no-videos", help="Write a side-by-side MP4 per clip."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """The whole dub on held-out clips: reconstruction and cross-dubbing protocols, with baselines and pictures."""
    if ctx.invoked_subcommand is not None:
        return
    import shlex
    import sys
    import time

    from dubber.cli.output import frame_progress, is_quiet
    from dubber.data.sources import first_per_speaker, read_sources
    from dubber.errors import InputError
    from dubber.evaluation.dub_eval import run_eval
    from dubber.evaluation.dub_pictures import ClipPictures, opening_plot
    from dubber.evaluation.dub_report import build_report, write_report
    from dubber.pipeline import DubbingPipeline, DubOptions

    if data is None or out is None:
        raise InputError(None, "dub eval needs --data and --out (or a subcommand: landmarks, renderer)")
    if protocol not in ("reconstruction", "split"):
        raise InputError(None, f"--protocol {protocol!r}: use reconstruction or split")
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; --out names a report folder")
    chosen = split or ("all" if data.is_dir() else "dev")
    clips = first_per_speaker(read_sources(data, None if chosen == "all" else {chosen}), per_speaker)
    options = DubOptions(steps=steps, preset=preset, adapt=adapt if protocol == "split" else "off")
    pipe = DubbingPipeline.from_pretrained(weights, device=device, dtype=dtype, options=options)
    settings = {
        "weights": weights,
        "steps": steps or pipe.renderer.default_steps,
        "device": str(pipe.device),
        "dtype": str(pipe.renderer.dtype).removeprefix("torch."),
        "split": chosen,
        "per_speaker": per_speaker,
        "crf": 18,
        "preset": preset,
        "adapt": options.adapt,
        "articulation": options.articulation,
    }
    if protocol == "split":
        seen = {c.speaker for c in read_sources(data) if c.split == "train"} if data.is_file() else set()
        _split_eval(pipe, clips, out, settings, seen, json_out)
        return
    pictures = ClipPictures(side_by_side_videos=videos)
    started = time.perf_counter()
    with frame_progress("scoring", stderr.is_terminal and not is_quiet()) as bar:
        task = bar.add_task("dub eval", total=len(clips), rate="")

        def progress(done: int, total: int, clip) -> None:
            bar.update(task, completed=done, rate=clip.clip[:30])

        reports = run_eval(pipe, clips, out, cross=cross, pictures=pictures, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    plot = None
    if pictures.openings:
        plot = opening_plot(list(pictures.openings.values())[:4], out / "opening.png").name
    settings["cross"] = cross
    report = build_report(
        reports,
        command="dub " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "dub eval",
        settings=settings,
        seconds=time.perf_counter() - started,
        plot=plot,
    )
    json_path, md_path = write_report(report, out)
    if json_out:
        print_json({k: report[k] for k in ("command", "settings", "seconds", "all", "splits")})
    elif not is_quiet():
        stderr.print(f"{len(reports)} clips in {report['seconds']:.0f} s: {md_path} ({json_path})")


def _split_eval(pipe, clips, out: Path, settings: dict, seen: set[str], json_out: bool) -> None:
    """``dub eval --protocol split``: the report (``report.json``, ``report.md``) in ``out``."""
    import shlex
    import sys
    import time

    from dubber.cli.output import frame_progress, is_quiet
    from dubber.evaluation.split_eval import run_split_eval
    from dubber.evaluation.split_report import build_split_report, write_split_report

    started = time.perf_counter()
    with frame_progress("scoring", stderr.is_terminal and not is_quiet()) as bar:
        task = bar.add_task("dub eval --protocol split", total=len(clips), rate="")
        reports = run_split_eval(pipe, clips, progress=lambda done, total, r: bar.update(task, completed=done))
    command = "dub " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "dub eval --protocol split"
    report = build_split_report(
        reports, command=command, settings=settings, seconds=time.perf_counter() - started, seen_speakers=seen
    )
    write_split_report(report, out)
    if json_out:
        print_json({k: v for k, v in report.items() if k != "clips"})
    elif not is_quiet():
        stderr.print(f"{len(reports)} clips in {report['seconds']:.0f} s: {out / 'report.md'}")


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
    from dubber.evaluation.renderer_monitor import dev_clips_for_eval, face_backend
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
