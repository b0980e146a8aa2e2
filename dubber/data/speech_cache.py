"""Speech-encoder features of a prepared cache's clips: ``speech-<features>.npy`` beside each clip's ``track.npz``.

``<features>`` names the encoder and the layer (``whisper-tiny.en.layer3``; ``feature_name``). Kept out of
``track.npz`` so that a cache made before the speech encoder existed (or for other features) gains them without
preparing its faces again: :func:`add_speech_features` fills in the clips that lack them, from each clip's source
audio, and is resumable like ``dub prep`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dubber.audio.speech import encode_speech
from dubber.data.prep_clip import ClipRecord, clip_dir
from dubber.errors import DubberError, InputError
from dubber.media.audio import decode_audio
from dubber.models.speech_encoder import SpeechEncoder, feature_name


def speech_path(cache: Path, clip_id: str, features: str) -> Path:
    return clip_dir(cache, clip_id) / f"speech-{features}.npy"


def read_speech(cache: Path, record: ClipRecord, features: str) -> np.ndarray | None:
    """The clip's features ``features`` (steps, dims) float32, or None when the cache does not hold them."""
    try:
        return np.load(speech_path(cache, record.clip_id, features)).astype(np.float32)
    except (OSError, ValueError):
        return None


def add_speech_features(
    cache: Path,
    records: list[ClipRecord],
    encoder: SpeechEncoder,
    progress: Callable[[int, int], None] | None = None,
    *,
    layer: int = 0,
) -> int:
    """Write ``encoder``'s features (at ``layer``) of every clip in ``records`` that has audio and lacks them;
    returns how many were made."""
    name = feature_name(encoder.config.source, layer)
    todo = [r for r in records if r.has_audio and not speech_path(cache, r.clip_id, name).is_file()]
    for i, rec in enumerate(todo):
        try:
            samples = decode_audio(rec.source).mono
        except (OSError, DubberError) as exc:
            # The cache records the source path as prep saw it; a moved source folder is the usual cause.
            raise InputError(rec.source, f"cannot read the audio of prepared clip {rec.clip_id} ({exc})") from None
        feats = encode_speech(samples, encoder, layer=layer).steps.astype(np.float16)
        dest = speech_path(cache, rec.clip_id, name)
        tmp = dest.with_suffix(".partial.npy")
        np.save(tmp, feats)
        os.replace(tmp, dest)
        if progress is not None:
            progress(i + 1, len(todo))
    return len(todo)
