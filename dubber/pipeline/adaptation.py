"""Per-video adaptation of the landmark completer: the input video's own speech and tracked mouth teach it this
speaker (articulation range, mouth shapes) before it dubs the new audio.

Each member of the model is fine-tuned, from a copy, on T-frame windows of the video's frames that show a face: the
windows of its own audio features at those frames' times, their pose points, and the lip and jaw points tracked on
them as targets, with the reference landmark sets the dub itself uses. The last fifth of the windows (in time) is
held out; training stops at the time budget and keeps the weights at the lowest held-out loss (the model as it came,
if no step improved on it), averaged in weight space with the original: a short video's held-out fifth is too
little to stop overfitting on its own (docs/DUBBING.md "Adaptation"). Each frame's mouth is paired with the sound it
belongs to: the video's audio moved by the lag of its mouth behind its sound (``dubber.pipeline.mouth_lag``), so
the adapted completer does not learn the recording's offset, which the new audio does not have.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from dubber.face.landmarks import N_POSE
from dubber.log import get_logger
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.landmark_loss import landmark_loss
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.motion import Features, member_windows

log = get_logger("pipeline")

MIN_SPEECH_SECONDS = 3.0  # less of the speaker on camera than this teaches nothing


@dataclass(frozen=True)
class AdaptationSettings:
    steps: int = 40  # per member: the same inputs and seed give the same model, unless the time budget ends it first
    seconds: float = 30.0  # time budget for all members together
    lr: float = 3e-4
    batch_size: int = 32
    eval_every: int = 10  # steps between held-out evaluations
    seed: int = 0
    # The fine-tuned weights' share in a weight-space average with the original ones: on short videos the fine-tuned
    # model alone overfits (docs/DUBBING.md "Adaptation"); half of each kept most of the gain and lost less.
    mix: float = 0.5
    person: int = 0  # whose frames it learns from, as ``--person`` counts them (0: the person seen longest)


@dataclass
class AdaptationReport:
    windows: int
    steps: dict[str, int]  # member -> steps trained
    best_step: dict[str, int]  # member -> the step whose weights were kept (0: the model as it came)
    held_out_before: dict[str, float]
    held_out_after: dict[str, float]
    seconds: float


def speech_frames(track: VideoTrack) -> int:
    """Frames with a tracked face: what adaptation can learn from (with the video's audio)."""
    return int(track.has_face.sum())


def _window_starts(ok: np.ndarray, window: int) -> np.ndarray:
    run = np.convolve(ok.astype(np.int32), np.ones(window, np.int32), mode="valid")
    return np.flatnonzero(run == window)


def adapt_completer(
    model: LandmarkCompleter | LandmarkEnsemble,
    track: VideoTrack,
    features: Features,
    references: np.ndarray,
    settings: AdaptationSettings | None = None,
    lag: int = 0,
) -> tuple[LandmarkCompleter | LandmarkEnsemble, AdaptationReport | None]:
    """A copy of ``model`` fine-tuned on the video ``track`` heard through ``features`` (its own audio), with the
    references (R, 131, 2) of ``settings.person``, on that person's frames (where people were told apart, the
    others' frames with these references would teach it wrong lips); ``model`` itself and None when the video has no
    window to learn from.
    ``lag``: frames the video's mouth follows its own sound; frame i learns from the sound at frame i - lag."""
    settings = settings or AdaptationSettings()
    started = time.perf_counter()
    window = model.config.window
    starts = _window_starts(track.person_frames(settings.person), window)  # the references' person
    if len(starts) < 4:
        return model, None
    held = max(1, len(starts) // 5)
    train, dev = starts[:-held], starts[-held:]
    if len(train) == 0:
        return model, None
    members = dict(model.members.items()) if isinstance(model, LandmarkEnsemble) else {"": model}
    budget = settings.seconds / len(members)
    adapted, report = {}, AdaptationReport(len(starts), {}, {}, {}, {}, 0.0)
    points = track.filled_points()
    heard = track.times - lag / track.frame_rate()
    for name, member in members.items():
        windows = member_windows(member.config, features, heard).astype(np.float32)
        data = _WindowData(windows, points[:, :N_POSE], points[:, N_POSE:], references, window)
        adapted[name], (steps, best, before, after) = _fine_tune(member, data, train, dev, settings, budget)
        report.steps[name], report.best_step[name] = steps, best
        report.held_out_before[name], report.held_out_after[name] = before, after
    report.seconds = time.perf_counter() - started
    log.info(
        "adapted the landmark completer to the video in %.1f s (%d windows): held-out loss %s",
        report.seconds,
        len(starts),
        ", ".join(f"{report.held_out_before[k]:.4f} -> {report.held_out_after[k]:.4f}" for k in report.steps),
    )
    if isinstance(model, LandmarkEnsemble):
        return LandmarkEnsemble(adapted, model.weights).eval(), report
    return adapted[""], report


@dataclass
class _WindowData:
    audio: np.ndarray  # (N, steps, features)
    pose: np.ndarray  # (N, 74, 2)
    content: np.ndarray  # (N, 57, 2)
    references: np.ndarray  # (R, 131, 2)
    window: int

    def batch(self, starts: np.ndarray, device) -> tuple[torch.Tensor, ...]:
        idx = starts[:, None] + np.arange(self.window)[None]
        refs = np.broadcast_to(self.references, (len(starts), *self.references.shape))
        return tuple(
            torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)
            for a in (self.audio[idx], self.pose[idx], refs, self.content[idx])
        )


def _fine_tune(
    member: LandmarkCompleter,
    data: _WindowData,
    train: np.ndarray,
    dev: np.ndarray,
    settings: AdaptationSettings,
    seconds: float,
) -> tuple[LandmarkCompleter, tuple]:
    param = next(member.parameters())
    model = copy.deepcopy(member).float()  # trained in float32 whatever the dub's precision
    device = param.device
    rng = np.random.default_rng(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    dev_batch = data.batch(dev, device)

    @torch.no_grad()
    def held_out() -> float:
        model.eval()
        audio, pose, refs, target = dev_batch
        return float(landmark_loss(model(audio, pose, refs), target)[0])

    best_loss = before = held_out()
    best_state, best_step, step = copy.deepcopy(model.state_dict()), 0, 0
    end = time.perf_counter() + seconds
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)  # the dropout masks: seeded here, the caller's RNG state left as it was
        while step < settings.steps and time.perf_counter() < end:
            model.train()
            audio, pose, refs, target = data.batch(rng.choice(train, min(settings.batch_size, len(train))), device)
            loss, _ = landmark_loss(model(audio, pose, refs), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % settings.eval_every == 0:
                value = held_out()
                if value < best_loss:
                    best_loss, best_step, best_state = value, step, copy.deepcopy(model.state_dict())
    original = member.state_dict()
    mixed = {
        k: settings.mix * v + (1 - settings.mix) * original[k].float() if v.is_floating_point() else v
        for k, v in best_state.items()
    }
    model.load_state_dict(mixed)
    return model.to(param.dtype).eval(), (step, best_step, before, best_loss)
