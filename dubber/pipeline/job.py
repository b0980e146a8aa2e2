"""One dub's inputs and the state its stages share (``DubbingPipeline.__call__`` and the stages it calls)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dubber.audio.features import AudioFeatures
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures
from dubber.media.probe import MediaInfo
from dubber.media.video_reader import VideoReader
from dubber.pipeline.options import DubOptions
from dubber.pipeline.phase_clock import PhaseClock

if TYPE_CHECKING:  # the job is made before the reading's module is needed
    from dubber.pipeline.articulation import HeardSpeech
    from dubber.pipeline.output_streams import OutputStreams

# progress(stage, done, total): stage "analyse" (first pass) or "dub" (second pass), counts in frames.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class DubJob:
    video: Path
    audio: Path
    output: Path
    opts: DubOptions
    progress: ProgressCallback | None
    started: float
    media: MediaInfo | None = None
    speech: Path | None = None  # the voice the mouth follows where ``audio`` mixes it with more (new_speech.py)
    speech_centre: bool = False  # ... heard through its surround mix's centre channel (dubber/audio/level.py)
    speech_gain: float = 1.0  # ... raised by this factor (quiet speech)
    subtitles: Path | None = None  # a subtitle file of the new speech, added as a track (output_streams.py)
    streams: OutputStreams | None = None  # the output's tracks besides the video, once chosen
    reader: VideoReader | None = None
    features: AudioFeatures | SpeechFeatures | MelAndSpeechFeatures | None = None
    audio_seconds: float = 0.0
    still: bool = False
    fps: float = 25.0
    batch_size: int = 8
    articulation_gain: float = 1.0  # the plan's spread (dubber/pipeline/articulation.py)
    tracking_segments: int = 1  # pass 1's trackers at once (dubber/pipeline/parallel_tracking.py)
    people: int = 0  # the people pass 1 told apart (dubber/face/identities.py; 0: none told)
    speaking: list[int] | None = None  # with --only-speaking, the people dubbed (dubber/pipeline/speaking_people.py)
    kept_shots: list[list] | None = None  # ... and the shots kept: [first frame's s, last's, person]
    render_workers: int = 1  # pass 2's chunks rendered at once (dubber/pipeline/dub_pass.py)
    heard: HeardSpeech | None = None  # the video's own speech heard ahead (dubber/pipeline/articulation.py)
    timings: dict[str, float] = field(default_factory=dict)
    clock: PhaseClock = field(default_factory=PhaseClock)  # the phases' wall and CPU time


def dub_settings(weights: str, runtime: str, renderer, job: DubJob) -> dict:
    """What made a dub's frames (``DubResult.settings``): the weights, the renderer's and the job's settings."""
    opts = job.opts
    blend, guard = renderer.reference_blend, renderer.mouth_guard
    return {
        "weights": weights,
        "runtime": runtime,
        "steps": opts.steps or renderer.default_steps,
        "seed": opts.seed,
        "speech": None if job.speech is None else str(job.speech),  # a stem the mouth followed, not the audio
        "speech_centre": job.speech_centre,
        "speech_gain_db": round(20 * math.log10(job.speech_gain), 1),
        "language": opts.language,
        "subtitles": None if job.subtitles is None else str(job.subtitles),
        "source_subtitles": opts.source_subtitles,
        "references": opts.references,
        "batch_size": job.batch_size,
        "articulation_gain": round(job.articulation_gain, 4),
        "guidance": opts.guidance,
        "scheduler": opts.scheduler or renderer.scheduler_name,
        "hint_warp": renderer.hint_warp,
        "face_backend": opts.face_backend,
        "source_detail": opts.source_detail,
        "reference_blend": blend.to_dict() if opts.reference_blend and blend is not None else None,
        "mouth_guard": guard.to_dict() if opts.reference_blend and guard is not None else None,
        "reference_key_side": renderer.reference_key_side,
        "face": opts.face_side or opts.face_index,  # --face: an index by size, or a side
        "tracking_segments": job.tracking_segments,
        "people": job.people,
        "person": opts.person,
        "speaking": job.speaking,
        "kept_shots": job.kept_shots,
        "render_workers": job.render_workers,
        # Where the paste's pixel work ran: torch on the models' GPU, else OpenCV (pipeline/face_redraw.py).
        "paste": "torch" if renderer.device.type == "cuda" else "opencv",
    }
