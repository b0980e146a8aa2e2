"""``dub train landmarks|renderer|joint --data CACHE --out RUN``: training runs on HF accelerate."""

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
    keep_best: str | None = typer.Option(
        None,
        "--keep-best",
        help="Also keep the model at its lowest dev_lmd or dev_lmd_unseen (dev speakers not trained on) of the "
        "evaluations, in RUN/best/.",
    ),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", min=0.0),
    speaker_balance: float = typer.Option(
        0.15, "--speaker-balance", min=0.0, max=1.0, help="Speakers drawn by frames ** this (0: uniform, 1: by frames)."
    ),
    pose_swap: float = typer.Option(
        0.3, "--pose-swap", min=0.0, max=1.0, help="Share of samples whose pose comes from another moment of the clip."
    ),
    freq_warp: float = typer.Option(
        0.0,
        "--freq-warp",
        min=0.0,
        max=0.5,
        help="Vocal-tract-length perturbation: scale the mel frequency axis by up to 1 +- this (other voices).",
    ),
    point_loss: str = typer.Option(
        "l1", "--point-loss", help="Loss on the points: l1, or l2 (squared error, scaled to L1's gradient at 0.01)."
    ),
    velocity_weight: float = typer.Option(
        1.0,
        "--velocity-weight",
        min=0.0,
        help="Weight of the L1 loss on frame-to-frame motion, beside the point loss's weight of 1.",
    ),
    opening_weight: float = typer.Option(
        0.0,
        "--opening-weight",
        min=0.0,
        help="Weight of an extra L1 loss on the mouth opening (inner-lip gap / width) on top of the point L1.",
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Start from these completer weights (a model folder) instead of random ones."
    ),
    time_stretch: float = typer.Option(
        0.0,
        "--time-stretch",
        min=0.0,
        max=0.5,
        help="Speaking-rate augmentation: windows resampled as if spoken up to 1 +- this times as fast.",
    ),
    audio_dropout: float = typer.Option(
        0.0,
        "--audio-dropout",
        min=0.0,
        max=0.9,
        help="Input dropout on the audio windows: each mel bin (to silence) or speech feature (to 0) dropped with "
        "this probability.",
    ),
    window: int | None = typer.Option(
        None, "--window", min=1, max=64, help="Frames the transformer predicts together (default: the size's own)."
    ),
    base: str | None = typer.Option(
        None,
        "--base",
        help="What the predicted offsets start from: mean (the references' mean lip/jaw shape; the default) or "
        "pose-affine (each reference carried to the frame's head pose by an affine map of the upper face).",
    ),
    sync_offsets: Path | None = typer.Option(
        None,
        "--sync-offsets",
        exists=True,
        dir_okay=False,
        help="A tools/sync_offsets.py report: train clips whose sound is clearly late or early are re-synced.",
    ),
    audio: str = typer.Option(
        "mel",
        "--audio",
        help="What the completer hears: mel (log-mel windows), speech (the shipped pretrained speech encoder's "
        "features; the cache gains them on the first run), or mel+speech (both, per mel step).",
    ),
    speech_encoder: Path | None = typer.Option(
        None, "--speech-encoder", exists=True, file_okay=False, help="With --audio speech: another encoder folder."
    ),
    speech_layer: int = typer.Option(
        3, "--speech-layer", min=0, help="With --audio speech: read the features after this encoder block (0: output)."
    ),
    speech_steps: int | None = typer.Option(
        None,
        "--speech-steps",
        min=2,
        help="With --audio speech: the encoder's 20 ms steps each frame's window reads (default 10: 0.2 s, the "
        "mel's span).",
        show_default=False,
    ),
    speech_norm: str = typer.Option(
        "none",
        "--speech-norm",
        help="With --audio speech: none, or clip (each sound track's mean features subtracted, in training and "
        "in a dub: the voice and the microphone taken out).",
    ),
    voice_warp: float = typer.Option(
        0.0,
        "--voice-warp",
        min=0.0,
        max=0.5,
        help="With --audio speech: the speech encoder also hears each train clip in other voices (its mel's "
        "frequency axis scaled by up to this much, as --freq-warp does for the mel); the cache gains them once.",
    ),
    voice_variants: int = typer.Option(4, "--voice-variants", min=1, help="With --voice-warp: other voices per clip."),
    voice_channel: bool = typer.Option(
        False,
        "--voice-channel",
        help="With --voice-warp: each other voice is also heard through a random recording channel (microphone "
        "tone, room reverberation, background noise).",
    ),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(None, "--device", help="cpu to force the CPU; default: what accelerate picks."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout."),
) -> None:
    """Train the landmark completer (audio -> lip and jaw landmarks)."""
    from dataclasses import asdict

    from dubber.audio.windows import SPEECH_WINDOW_STEPS  # here, not at the top: `dub --help` needs no numpy
    from dubber.models.landmark_completer import AUDIO_INPUTS, BASES, LandmarkCompleterConfig
    from dubber.models.speech_encoder import DEFAULT_SPEECH_ENCODER, SpeechEncoder
    from dubber.training.landmark_loss import POINT_LOSSES
    from dubber.training.landmark_trainer import KEEP_BEST, LandmarkTrainConfig, train_landmarks

    if keep_best is not None and keep_best not in KEEP_BEST:
        raise typer.BadParameter(f"{keep_best!r} is not one of {', '.join(KEEP_BEST)}", param_hint="--keep-best")

    if point_loss not in POINT_LOSSES:
        raise typer.BadParameter(f"{point_loss!r} is not one of {', '.join(POINT_LOSSES)}", param_hint="--point-loss")
    if base is not None and base not in BASES:
        raise typer.BadParameter(f"{base!r} is not one of {', '.join(BASES)}", param_hint="--base")
    if audio not in AUDIO_INPUTS:
        raise typer.BadParameter(f"{audio!r} is not one of {', '.join(AUDIO_INPUTS)}", param_hint="--audio")
    if audio == "speech" and (freq_warp or time_stretch):
        raise typer.BadParameter("--freq-warp and --time-stretch act on the mel, not on speech", param_hint="--audio")
    if audio == "mel+speech" and time_stretch:
        raise typer.BadParameter("--time-stretch resamples the mel alone, not mel+speech", param_hint="--audio")
    if voice_warp and audio != "speech":
        raise typer.BadParameter("--voice-warp makes variants of speech features; it needs --audio speech",
                                 param_hint="--voice-warp")  # fmt: skip
    if speech_encoder is not None:
        try:  # its name goes into the config, so that the trained completer says which encoder it reads
            speech_name = SpeechEncoder.from_pretrained(speech_encoder).config.source
        except (OSError, ValueError, RuntimeError) as exc:
            msg = f"{speech_encoder}: not a speech encoder ({exc})"
            raise typer.BadParameter(msg, param_hint="--speech-encoder") from None
    try:  # the config checks how options combine (the checks above name the option at fault first)
        cfg = LandmarkTrainConfig(
            model=model,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            eval_every=eval_every,
            keep_best=keep_best,
            checkpoint_minutes=checkpoint_minutes,
            speaker_balance=speaker_balance,
            pose_swap=pose_swap,
            freq_warp=freq_warp,
            velocity_weight=velocity_weight,
            opening_weight=opening_weight,
            point_loss=point_loss,
            init_from=None if init_from is None else str(init_from.resolve()),
            time_stretch=time_stretch,
            audio_dropout=audio_dropout,
            window=window,
            base=base,
            sync_offsets=None if sync_offsets is None else str(sync_offsets.resolve()),
            audio=audio,
            speech_layer=speech_layer,
            speech_steps=SPEECH_WINDOW_STEPS if speech_steps is None else speech_steps,
            speech_norm=speech_norm,
            voice_warp=voice_warp,
            voice_variants=voice_variants,
            voice_channel=voice_channel,
            speech_encoder=speech_name if speech_encoder is not None else DEFAULT_SPEECH_ENCODER,
            speech_encoder_path=None if speech_encoder is None else str(speech_encoder.resolve()),
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
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
        if result.best:
            stderr.print(f"best dev model (step {result.best['step']}, {result.best['value']:.4f}) in {out / 'best'}")


@train_app.command("renderer")
def train_renderer_command(
    data: Path = typer.Option(..., "--data", help="Cache folder written by `dub prep`.", show_default=False),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: config, log.jsonl, grids/, checkpoints, model/.", show_default=False
    ),
    model: str = typer.Option("small", "--model", help="Renderer size: tiny, small (CPU), base (GPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", min=0.0, help="Stop (with a checkpoint) after this long."
    ),
    max_steps: int = typer.Option(
        20_000, "--max-steps", min=1, help="Total steps (the learning-rate schedule's length)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    lr: float = typer.Option(2e-4, "--lr", min=0.0),
    ema_decay: float = typer.Option(0.999, "--ema-decay", min=0.0, max=1.0),
    eval_every: int = typer.Option(500, "--eval-every", min=1, help="Dev metrics and a PNG grid every N steps."),
    eval_steps: int = typer.Option(8, "--eval-steps", min=1, help="Denoising steps when evaluating."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", min=0.0),
    max_frames_per_clip: int = typer.Option(
        40, "--max-frames-per-clip", min=2, help="Frames decoded per clip (spread over it); bounds memory."
    ),
    speaker_balance: float = typer.Option(
        0.3, "--speaker-balance", min=0.0, max=1.0, help="Speakers drawn by frames ** this (0: uniform, 1: by frames)."
    ),
    own_jitter: float = typer.Option(
        0.2,
        "--own-jitter",
        min=0.0,
        max=1.0,
        help="Each image's own similarity jitter, as a fraction of the one shared by a sample's target and references.",
    ),
    high_noise_share: float = typer.Option(
        0.0,
        "--high-noise-share",
        min=0.0,
        max=1.0,
        help="Share of samples at the noisiest tenth of the schedule (where a one-step sampler runs).",
    ),
    splits: str = typer.Option("train,video_only", "--splits", help="Cache splits to train on."),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Start from these weights: a renderer folder or a checkpoint's model.safetensors."
    ),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(None, "--device", help="cpu to force the CPU; default: a GPU when present."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout."),
) -> None:
    """Train the diffusion renderer (masked crop + landmarks + references -> lower face)."""

    from dubber.models.renderer_unet import renderer_config
    from dubber.training.renderer_trainer import RendererTrainConfig, train_renderer

    try:
        renderer_config(model)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from None
    cfg = RendererTrainConfig(
        model=model,
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        ema_decay=ema_decay,
        eval_every=eval_every,
        eval_steps=eval_steps,
        checkpoint_minutes=checkpoint_minutes,
        max_frames_per_clip=max_frames_per_clip,
        speaker_balance=speaker_balance,
        own_jitter=own_jitter,
        high_noise_share=high_noise_share,
        splits=tuple(s.strip() for s in splits.split(",") if s.strip()),
        init_from=None if init_from is None else str(init_from.resolve()),
        seed=seed,
    )
    result = train_renderer(data, out, cfg, resume=resume, max_minutes=max_minutes, device=device, log_fn=_show)
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
    data: Path = typer.Option(..., "--data", help="Cache folder written by `dub prep`.", show_default=False),
    out: Path = typer.Option(..., "--out", help="Run folder: model/landmarks and model/renderer.", show_default=False),
    landmarks: Path | None = typer.Option(None, "--landmarks", help="Landmark model folder (default: shipped)."),
    renderer: Path | None = typer.Option(None, "--renderer", help="Renderer folder (default: shipped)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.0),
    max_steps: int = typer.Option(2000, "--max-steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    landmark_weight: float = typer.Option(1.0, "--landmark-weight", min=0.0, help="Weight of the landmark L1 loss."),
    freq_warp: float = typer.Option(
        0.0, "--freq-warp", min=0.0, max=0.5, help="Frequency-axis warp of the mel (as in `dub train landmarks`)."
    ),
    eval_every: int = typer.Option(500, "--eval-every", min=1),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", min=0.0),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(None, "--device", help="cpu to force the CPU; default: a GPU when present."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout."),
) -> None:
    """Fine-tune the landmark completer and the renderer together, end to end."""
    from dubber.training.joint_trainer import JointTrainConfig, train_joint
    from dubber.weights import LANDMARKS_MODEL, load_landmark_model, load_renderer, weights_root

    cfg = JointTrainConfig(
        batch_size=batch_size,
        max_steps=max_steps,
        landmark_weight=landmark_weight,
        freq_warp=freq_warp,
        eval_every=eval_every,
        checkpoint_minutes=checkpoint_minutes,
        seed=seed,
    )
    from dubber.errors import InputError
    from dubber.models.landmark_ensemble import LandmarkEnsemble

    completer = load_landmark_model(landmarks)
    if isinstance(completer, LandmarkEnsemble):  # its members hear different inputs; fine-tune one of them
        folder = landmarks if landmarks is not None else weights_root() / LANDMARKS_MODEL
        members = ", ".join(str(folder / name) for name in completer.weights)
        raise InputError(folder, f"is an ensemble of completers; pass one member with --landmarks ({members})")
    result = train_joint(
        data, out, completer, load_renderer(renderer), cfg,
        resume=resume, max_minutes=max_minutes, device=device, log_fn=_show_joint,
    )  # fmt: skip
    _finish(result, out, json_out)


def _show_joint(rec: dict) -> None:
    if "eval" in rec:
        parts = ", ".join(f"{k} {v:.4g}" for k, v in rec.items() if k.startswith("e2e_") and v is not None)
        stderr.print(f"step {rec['step']}: {parts}")
    elif "loss" in rec and rec["step"] % 200 == 0:
        stderr.print(f"step {rec['step']}: loss {rec['loss_avg']:.4f} ({rec['minutes']:.1f} min)")
