"""Whether and how a dub adapts its landmark completer to the video's speaker (``--adapt``): the reasons a video
cannot teach it, the adaptation cache, and the time it takes in the dub's timings."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from dubber.audio.streaming import StreamedFeatures
from dubber.log import get_logger
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.pipeline.adaptation import MIN_SPEECH_SECONDS, AdaptationSettings, adapt_completer, speech_frames
from dubber.pipeline.adaptation_cache import AdaptationCache, entry_key
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.face_redraw import add_time
from dubber.pipeline.job import DubJob

log = get_logger("pipeline")

Completer = LandmarkCompleter | LandmarkEnsemble


def _why_not(job: DubJob, track: VideoTrack, runtime: str) -> str | None:
    if runtime != "torch":
        return f"the {runtime} runtime's exported graphs do not train (adapt with --runtime torch)"
    if job.still:
        return "a still image has no speech to learn from"
    if job.media.audio is None:
        return "the video has no audio"
    if speech_frames(track) < MIN_SPEECH_SECONDS * job.fps:
        return f"fewer than {MIN_SPEECH_SECONDS:g} s of frames with a face"
    return None


def completer_for_video(
    job: DubJob,
    track: VideoTrack,
    landmarks: Completer,
    runtime: str,
    audio_features: Callable[[Path], StreamedFeatures],
    mouth_lag: Callable[[], int | None],
) -> Completer:
    """``landmarks`` fine-tuned on the video's own speech (``job.opts.adapt``), from the cache when it was before;
    ``landmarks`` itself where adaptation is off or the video cannot teach it (a still image, no audio, too few
    frames with a face). ``audio_features`` computes the completer's input from a file; ``mouth_lag`` reads how
    many frames the video's mouth follows its sound (dubber/pipeline/mouth_lag.py)."""
    mode = job.opts.adapt
    if mode == "off":
        return landmarks
    problem = _why_not(job, track, runtime)
    if problem is not None:
        (log.warning if mode == "on" else log.info)("%s: not adapted to the speaker: %s", job.video, problem)
        return landmarks
    t0 = time.perf_counter()
    person = job.opts.person or 0  # the person dubbed, else the one seen longest
    settings = AdaptationSettings(seconds=job.opts.adapt_seconds, seed=job.opts.seed, person=person)
    cache = AdaptationCache(Path(job.opts.cache_dir) if job.opts.cache_dir else None)
    key = entry_key(job.video, landmarks, settings)
    model = cache.load(key, landmarks)
    if model is not None:
        log.info("%s: the completer adapted to it before, from %s", job.video, cache.root / key)
    else:
        lag = mouth_lag() or 0
        with closing(audio_features(job.video)) as own:
            order = track.person_order()
            refs = track.landmark_references(landmarks.config.n_refs, order[person] if len(order) > 1 else None)
            model, report = adapt_completer(landmarks, track, own.features, refs, settings, lag=lag)
        if report is not None:
            cache.store(key, model, job.video, report.seconds)
    add_time(job.timings, "adapt", t0)
    return model
