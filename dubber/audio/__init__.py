"""Audio features: the normalised log-mel of docs/ARCHITECTURE.md §4 and per-frame windows chosen by timestamp."""

from dubber.audio.features import AudioFeatures, audio_features
from dubber.audio.mel import MelConfig, log_mel, mel_filterbank
from dubber.audio.windows import WINDOW_STEPS, frame_windows, window_starts

__all__ = [
    "WINDOW_STEPS",
    "AudioFeatures",
    "MelConfig",
    "audio_features",
    "frame_windows",
    "log_mel",
    "mel_filterbank",
    "window_starts",
]
