"""Speech-encoder features of a prepared cache's clips: ``speech-<features>.npy`` beside each clip's ``track.npz``.

``<features>`` names the encoder and the layer (``whisper-tiny.en.layer3``; ``feature_name``). Kept out of
``track.npz`` so that a cache made before the speech encoder existed (or for other features) gains them without
preparing its faces again: :func:`add_speech_features` fills in the clips that lack them, from each clip's source
audio, and is resumable like ``dub prep`` itself.
"""

from __future__ import annotations

import os
import zlib
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


def voice_variant_name(features: str, amount: float, index: int) -> str:
    """The name of variant ``index`` of ``features`` computed from the clip's audio in a warped voice (VTLP by up to
    ``amount``): ``whisper-tiny.en.layer3.vtlp15.0``."""
    return f"{features}.vtlp{round(amount * 100)}.{index}"


def voice_warp(clip_id: str, amount: float, index: int) -> float:
    """The frequency-axis factor of a clip's voice variant: log-uniform in [1 / (1 + amount), 1 + amount], fixed by
    the clip's id and the variant's index, so a cache filled in two sittings holds the same variants."""
    rng = np.random.default_rng([zlib.crc32(clip_id.encode()), index])
    span = np.log1p(amount)
    return float(np.exp(rng.uniform(-span, span)))


def add_voice_variants(
    cache: Path,
    records: list[ClipRecord],
    encoder: SpeechEncoder,
    *,
    layer: int,
    amount: float,
    count: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write ``count`` voice variants (``voice_variant_name``) of each clip's features that lacks them: the encoder
    run over the clip's audio with Whisper's mel warped by ``voice_warp``. Training draws among them and the plain
    features, as the mel completer's ``--freq-warp`` warps its mel: the speech encoder hears a speaker's formants
    too, so a completer trained on few voices would tie mouth shapes to them. Returns how many files were made."""
    name = feature_name(encoder.config.source, layer)
    todo = [
        (r, k)
        for r in records
        if r.has_audio
        for k in range(count)
        if not speech_path(cache, r.clip_id, voice_variant_name(name, amount, k)).is_file()
    ]
    loaded: tuple[str, np.ndarray] | None = None
    for i, (rec, k) in enumerate(todo):
        if loaded is None or loaded[0] != rec.clip_id:
            loaded = (rec.clip_id, _clip_samples(rec))
        warp = voice_warp(rec.clip_id, amount, k)
        feats = encode_speech(loaded[1], encoder, layer=layer, warp=warp).steps.astype(np.float16)
        _save(speech_path(cache, rec.clip_id, voice_variant_name(name, amount, k)), feats)
        if progress is not None:
            progress(i + 1, len(todo))
    return len(todo)


def _clip_samples(rec: ClipRecord) -> np.ndarray:
    try:
        return decode_audio(rec.source).mono
    except (OSError, DubberError) as exc:
        # The cache records the source path as prep saw it; a moved source folder is the usual cause.
        raise InputError(rec.source, f"cannot read the audio of prepared clip {rec.clip_id} ({exc})") from None


def _save(dest: Path, feats: np.ndarray) -> None:
    tmp = dest.with_suffix(".partial.npy")
    np.save(tmp, feats)
    os.replace(tmp, dest)


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
        feats = encode_speech(_clip_samples(rec), encoder, layer=layer).steps.astype(np.float16)
        _save(speech_path(cache, rec.clip_id, name), feats)
        if progress is not None:
            progress(i + 1, len(todo))
    return len(todo)
