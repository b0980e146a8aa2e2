"""``dub train landmarks --data CACHE --out RUN``: training runs on HF accelerate (renderer and joint come later)."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli.output import print_json, stderr

train_app = typer.Typer(help="Train the models on a cache made by `dub prep`.", no_args_is_help=True)


@train_app.command("landmarks")
def train_landmarks_command(
    data: Path = typer.Option(..., "--data", help="Cache folder written by `dub prep`.", show_default=False),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: config, log.jsonl, checkpoints, model/.", show_default=False
    ),
    model: str = typer.Option("small", "--model", help="Model size: tiny, small (CPU), base (GPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", min=0.0, help="Stop (with a checkpoint) after this long."
    ),
    max_steps: int = typer.Option(
        20_000, "--max-steps", min=1, help="Total steps (the learning-rate schedule's length)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float = typer.Option(5e-4, "--lr", min=0.0),
    eval_every: int = typer.Option(500, "--eval-every", min=1, help="Dev evaluation every N steps."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", min=0.0),
    speaker_balance: float = typer.Option(
        0.15, "--speaker-balance", min=0.0, max=1.0, help="Speakers drawn by frames ** this (0: uniform, 1: by frames)."
    ),
    pose_swap: float = typer.Option(
        0.3, "--pose-swap", min=0.0, max=1.0, help="Share of samples whose pose comes from another moment of the clip."
    ),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(None, "--device", help="cpu to force the CPU; default: what accelerate picks."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout."),
) -> None:
    """Train the landmark completer (audio -> lip and jaw landmarks)."""
    from dataclasses import asdict

    from dubber.models.landmark_completer import LandmarkCompleterConfig
    from dubber.training.landmark_trainer import LandmarkTrainConfig, train_landmarks

    cfg = LandmarkTrainConfig(
        model=model,
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        eval_every=eval_every,
        checkpoint_minutes=checkpoint_minutes,
        speaker_balance=speaker_balance,
        pose_swap=pose_swap,
        seed=seed,
    )
    try:
        LandmarkCompleterConfig.named(model)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from None

    def show(rec: dict) -> None:
        if "eval" in rec:
            stderr.print(
                f"step {rec['step']}: dev LMD {rec['dev_lmd']:.4f} (reference mean {rec['dev_lmd_ref_mean']:.4f})"
            )
        elif "loss" in rec and rec["step"] % 500 == 0:
            stderr.print(f"step {rec['step']}: loss {rec['loss_avg']:.4f} ({rec['minutes']:.1f} min)")

    result = train_landmarks(data, out, cfg, resume=resume, max_minutes=max_minutes, device=device, log_fn=show)
    if json_out:
        print_json(asdict(result))
    else:
        stderr.print(f"{result.stopped}: step {result.step} after {result.minutes:.1f} min; model in {out / 'model'}")
