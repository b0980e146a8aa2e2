"""``dub train landmarks|renderer|joint --data CACHE --out RUN``: training runs on HF accelerate."""

from __future__ import annotations

from pathlib import Path

import typer

from dubber.cli.output import print_json, stderr

train_app = typer.Typer(help="Train the models on a cache made by `dub prep`.", no_args_is_help=True)


DATA = typer.Option(..., "--data", help="Cache folder written by `dub prep`.", show_default=False)
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint.")
MAX_MINUTES = typer.Option(None, "--max-minutes", min=0.0, help="Stop (with a checkpoint) after this long.")
RECIPE = typer.Option(
    None,
    "--recipe",
    help="A TOML file of training settings (recipes/ holds those of the shipped weights).",
    show_default=False,
)
SET = typer.Option(
    [],
    "--set",
    help="Override one setting of the recipe: KEY=VALUE, repeatable (an unknown KEY lists them all).",
    show_default=False,
)
MAX_STEPS = typer.Option(None, "--max-steps", min=1, help="Total steps, the schedule's length.", show_default=False)
EVAL_EVERY = typer.Option(None, "--eval-every", min=1, help="Dev evaluation every N steps.", show_default=False)
SEED = typer.Option(None, "--seed", help="Seed of the weights and batches.", show_default=False)
DEVICE = typer.Option(None, "--device", help="cpu to force the CPU; default: a GPU when present.")
JSON_OUT = typer.Option(False, "--json", help="Print the result as one JSON object on stdout.")


def _settings(recipe: Path | None, overrides: list[str], **flags) -> list[dict]:
    """The recipe's settings, then --set's, then the flags given: later ones win."""
    from dubber.training.recipes import parse_overrides, read_recipe

    return [
        read_recipe(recipe) if recipe else {},
        parse_overrides(overrides),
        {k: v for k, v in flags.items() if v is not None},
    ]


@train_app.command("landmarks")
def train_landmarks_command(
    data: Path = DATA,
    out: Path = typer.Option(
        ..., "--out", help="Run folder: config, log.jsonl, checkpoints, model/.", show_default=False
    ),
    recipe: Path | None = RECIPE,
    overrides: list[str] = SET,
    resume: bool = RESUME,
    max_minutes: float | None = MAX_MINUTES,
    max_steps: int | None = MAX_STEPS,
    eval_every: int | None = EVAL_EVERY,
    keep_best: str | None = typer.Option(
        None,
        "--keep-best",
        help="Also keep the model at its lowest dev_lmd or dev_lmd_unseen (dev speakers not trained on) of the "
        "evaluations, in RUN/best/.",
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Start from these completer weights (a model folder) instead of random ones."
    ),
    seed: int | None = SEED,
    device: str | None = DEVICE,
    json_out: bool = JSON_OUT,
) -> None:
    """Train the landmark completer (audio -> lip and jaw landmarks): `--recipe recipes/landmarks-speech.toml`."""
    from dubber.training.landmark_trainer import LandmarkTrainConfig, train_landmarks
    from dubber.training.recipes import make_config

    layers = _settings(
        recipe,
        overrides,
        max_steps=max_steps,
        eval_every=eval_every,
        keep_best=keep_best,
        init_from=None if init_from is None else str(init_from.resolve()),
        seed=seed,
    )
    cfg = make_config(LandmarkTrainConfig, *layers, where=str(recipe or "dub train landmarks"))

    def show(rec: dict) -> None:
        if "eval" in rec:
            stderr.print(
                f"step {rec['step']}: dev LMD {rec['dev_lmd']:.4f} (reference mean {rec['dev_lmd_ref_mean']:.4f})"
            )
        elif "loss" in rec and rec["step"] % 500 == 0:
            stderr.print(f"step {rec['step']}: loss {rec['loss_avg']:.4f} ({rec['minutes']:.1f} min)")

    result = train_landmarks(data, out, cfg, resume=resume, max_minutes=max_minutes, device=device, log_fn=show)
    _finish(result, out, json_out)
    if result.best and not json_out:
        stderr.print(f"best dev model (step {result.best['step']}, {result.best['value']:.4f}) in {out / 'best'}")


@train_app.command("renderer")
def train_renderer_command(
    data: Path = DATA,
    out: Path = typer.Option(
        ..., "--out", help="Run folder: config, log.jsonl, grids/, checkpoints, model/.", show_default=False
    ),
    recipe: Path | None = RECIPE,
    overrides: list[str] = SET,
    resume: bool = RESUME,
    max_minutes: float | None = MAX_MINUTES,
    max_steps: int | None = MAX_STEPS,
    eval_every: int | None = EVAL_EVERY,
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Start from these weights: a renderer folder or a checkpoint's model.safetensors."
    ),
    seed: int | None = SEED,
    device: str | None = DEVICE,
    json_out: bool = JSON_OUT,
) -> None:
    """Train the diffusion renderer (masked crop + landmarks + references -> lower face): `--recipe
    recipes/renderer.toml`."""
    from dubber.evaluation.renderer_monitor import RendererMonitor
    from dubber.training.recipes import make_config
    from dubber.training.renderer_trainer import RendererTrainConfig, train_renderer

    layers = _settings(
        recipe,
        overrides,
        max_steps=max_steps,
        eval_every=eval_every,
        init_from=None if init_from is None else str(init_from.resolve()),
        seed=seed,
    )
    cfg = make_config(RendererTrainConfig, *layers, where=str(recipe or "dub train renderer"))
    result = train_renderer(
        data,
        out,
        cfg,
        resume=resume,
        max_minutes=max_minutes,
        device=device,
        log_fn=_show,
        make_monitor=RendererMonitor,
    )
    _finish(result, out, json_out)


def _show(rec: dict) -> None:
    if "eval" in rec:
        keys = [k for k in rec if k.endswith("_model_psnr") or k.endswith("_model_lmd") or k.endswith("paste_psnr")]
        parts = ", ".join(f"{k} {rec[k]:.4g}" for k in keys if rec[k] is not None)
        stderr.print(f"step {rec['step']}: {parts}")
    elif "loss" in rec and rec["step"] % 500 == 0:
        stderr.print(f"step {rec['step']}: loss {rec['loss_avg']:.4f} ({rec['minutes']:.1f} min)")


def _finish(result, out: Path, json_out: bool) -> None:
    from dataclasses import asdict

    if json_out:
        print_json(asdict(result))
    else:
        stderr.print(f"{result.stopped}: step {result.step} after {result.minutes:.1f} min; model in {out / 'model'}")


@train_app.command("joint")
def train_joint_command(
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Run folder: model/landmarks and model/renderer.", show_default=False),
    landmarks: Path | None = typer.Option(None, "--landmarks", help="Landmark model folder (default: shipped)."),
    renderer: Path | None = typer.Option(None, "--renderer", help="Renderer folder (default: shipped)."),
    recipe: Path | None = RECIPE,
    overrides: list[str] = SET,
    resume: bool = RESUME,
    max_minutes: float | None = MAX_MINUTES,
    max_steps: int | None = MAX_STEPS,
    eval_every: int | None = EVAL_EVERY,
    seed: int | None = SEED,
    device: str | None = DEVICE,
    json_out: bool = JSON_OUT,
) -> None:
    """Fine-tune the landmark completer and the renderer together, end to end."""
    from dubber.evaluation.joint_eval import EndToEndDev
    from dubber.training.joint_trainer import JointTrainConfig, train_joint
    from dubber.training.recipes import make_config
    from dubber.weights import LANDMARKS_MODEL, load_landmark_model, load_renderer, weights_root

    layers = _settings(recipe, overrides, max_steps=max_steps, eval_every=eval_every, seed=seed)
    cfg = make_config(JointTrainConfig, *layers, where=str(recipe or "dub train joint"))
    from dubber.errors import InputError
    from dubber.models.landmark_ensemble import LandmarkEnsemble

    completer = load_landmark_model(landmarks)
    if isinstance(completer, LandmarkEnsemble):  # its members hear different inputs; fine-tune one of them
        folder = landmarks if landmarks is not None else weights_root() / LANDMARKS_MODEL
        members = ", ".join(str(folder / name) for name in completer.weights)
        raise InputError(folder, f"is an ensemble of completers; pass one member with --landmarks ({members})")
    result = train_joint(
        data,
        out,
        completer,
        load_renderer(renderer),
        cfg,
        resume=resume,
        max_minutes=max_minutes,
        device=device,
        log_fn=_show_joint,
        make_dev=EndToEndDev.from_cache,
    )
    _finish(result, out, json_out)


def _show_joint(rec: dict) -> None:
    if "eval" in rec:
        parts = ", ".join(f"{k} {v:.4g}" for k, v in rec.items() if k.startswith("e2e_") and v is not None)
        stderr.print(f"step {rec['step']}: {parts}")
    elif "loss" in rec and rec["step"] % 200 == 0:
        stderr.print(f"step {rec['step']}: loss {rec['loss_avg']:.4f} ({rec['minutes']:.1f} min)")
