"""``dub eval landmarks``: score the landmark completer on held-out speakers, with baselines."""

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
