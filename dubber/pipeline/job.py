"""One dub's inputs and the state its stages share (``DubbingPipeline.__call__`` and the stages it calls)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dubber.audio.features import AudioFeatures
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures
from dubber.media.probe import MediaInfo
from dubber.media.video_reader import VideoReader
from dubber.pipeline.options import DubOptions

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
    reader: VideoReader | None = None
    features: AudioFeatures | SpeechFeatures | MelAndSpeechFeatures | None = None
    audio_seconds: float = 0.0
    still: bool = False
    fps: float = 25.0
    batch_size: int = 8
    timings: dict[str, float] = field(default_factory=dict)
