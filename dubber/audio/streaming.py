"""The audio features of a dub computed as the audio decodes, block by block, equal to the whole-clip functions.

:class:`MelStream` gives ``log_mel``'s steps and :class:`SpeechStream` ``encode_speech``'s, each as soon as the
samples they depend on have arrived; :func:`stream_features` decodes an audio file once through both and keeps the
rows on disk (``RowStore``), so neither the samples nor the features of a long audio are held in memory. Computing
the mel of a whole clip at once took 1.5 GB of transient memory for 20 minutes of audio.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dubber.audio.features import AudioFeatures
from dubber.audio.mel import MelConfig, frame_magnitude, scaled_log_mel
from dubber.audio.rows import RowStore
from dubber.audio.speech import SAMPLE_RATE, MelAndSpeechFeatures, SpeechFeatures, whisper_log_mel
from dubber.media.audio import AudioReader, skip_samples
from dubber.models.speech_encoder import SpeechEncoder

_STEP_SAMPLES = 320  # one speech step, 20 ms
_CHUNK = 30 * SAMPLE_RATE  # what the speech encoder hears at once
_STRIDE = 20 * SAMPLE_RATE  # between chunk starts


class MelStream:
    """``log_mel`` of samples pushed in blocks of any size: ``push`` returns the steps completed so far, ``finish``
    the rest (frames centred on their step, zeros beyond both ends, pre-emphasis across blocks)."""

    def __init__(self, config: MelConfig = MelConfig()) -> None:
        self.config = config
        self._half = config.n_fft // 2
        self._buffer = np.zeros(self._half)  # pre-emphasised samples from global index self._origin
        self._origin = -self._half
        self._previous: float | None = None
        self._received = 0
        self._next = 0

    def _frames(self, stop: int) -> np.ndarray:
        hop, first = self.config.hop_length, self._next
        if stop <= first:
            return np.zeros((0, self.config.n_mels), np.float32)
        offset = first * hop - self._half - self._origin
        frames = np.lib.stride_tricks.sliding_window_view(self._buffer[offset:], self.config.n_fft)[::hop]
        out = scaled_log_mel(frame_magnitude(frames[: stop - first], self.config), self.config)
        self._next = stop
        cut = stop * hop - self._half - self._origin
        self._buffer, self._origin = self._buffer[cut:], self._origin + cut
        return out

    def push(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if len(x) == 0:
            return np.zeros((0, self.config.n_mels), np.float32)
        p = self.config.preemphasis
        if self._previous is None:
            emphasised = np.concatenate([x[:1], x[1:] - p * x[:-1]])
        else:
            emphasised = x - p * np.concatenate([[self._previous], x[:-1]])
        self._previous = float(x[-1])
        self._buffer = np.concatenate([self._buffer, emphasised])
        self._received += len(x)
        ready = (self._received - self._half) // self.config.hop_length + 1 if self._received >= self._half else 0
        return self._frames(ready)

    def finish(self) -> np.ndarray:
        if self._received == 0:
            return np.zeros((0, self.config.n_mels), np.float32)
        self._buffer = np.concatenate([self._buffer, np.zeros(self.config.n_fft)])
        return self._frames(1 + self._received // self.config.hop_length)


class SpeechStream:
    """``encode_speech`` of 16 kHz mono samples pushed in blocks: 30 s chunks 20 s apart are encoded (``batch`` at
    a time) once it is known whether more audio follows them, and their rows handed to ``sink`` in order."""

    def __init__(
        self, encoder: SpeechEncoder, sink: Callable[[np.ndarray], None], *, layer: int = 0, batch: int = 4
    ) -> None:
        self.encoder, self.sink, self.layer, self.batch = encoder, sink, layer, batch
        self._buffer = np.zeros(0, np.float32)  # samples from global index self._origin
        self._blocks: list[np.ndarray] = []  # pushed after the buffer, joined only when a chunk is encoded
        self._origin = 0
        self._received = 0
        self._next_start = 0
        self._pending: list[tuple[int, bool]] = []  # (chunk start, is the last chunk)
        self._written = 0

    def push(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._blocks.append(x)
        self._received += len(x)
        while self._received > self._next_start + _CHUNK:  # more audio follows this chunk: not the last
            self._pending.append((self._next_start, False))
            self._next_start += _STRIDE
            if len(self._pending) == self.batch:
                self._encode()

    def finish(self) -> None:
        while True:
            last = self._next_start + _CHUNK >= self._received
            self._pending.append((self._next_start, last))
            if last:
                break
            self._next_start += _STRIDE
        while self._pending:
            self._encode()
        total = 1 + self._received // _STEP_SAMPLES
        if self._written < total:  # steps no chunk kept (the very end of a chunk that ends the audio exactly)
            self.sink(np.zeros((total - self._written, self.encoder.config.d_model), np.float32))
            self._written = total

    @torch.inference_mode()
    def _encode(self) -> None:
        group, self._pending = self._pending[: self.batch], self._pending[self.batch :]
        if self._blocks:
            self._buffer, self._blocks = np.concatenate([self._buffer, *self._blocks]), []
        ctx = self.encoder.config.n_ctx
        edge = (ctx - _STRIDE // _STEP_SAMPLES) // 2  # steps dropped at each inner chunk edge
        mels = np.stack(
            [whisper_log_mel(self._buffer[s - self._origin : s - self._origin + _CHUNK], 2 * ctx) for s, _ in group]
        )
        param = next(self.encoder.parameters())
        feats = self.encoder(torch.from_numpy(mels).to(device=param.device, dtype=param.dtype), self.layer)
        feats = feats.float().cpu().numpy()
        total = 1 + self._received // _STEP_SAMPLES
        for row, (s, last) in zip(feats, group, strict=True):
            first = s // _STEP_SAMPLES
            lo = 0 if s == 0 else edge
            hi = min(total, first + ctx) if last else first + ctx - edge
            if hi > first + lo:
                self.sink(row[lo : hi - first])
                self._written += hi - first - lo
        keep = self._pending[0][0] if self._pending else self._next_start
        cut = max(0, keep - self._origin)
        self._buffer, self._origin = self._buffer[cut:], self._origin + cut


@dataclass
class StreamedFeatures:
    """What :func:`stream_features` read: the features (their rows on disk until ``close``) and the audio's length."""

    features: AudioFeatures | SpeechFeatures | MelAndSpeechFeatures
    seconds: float
    stores: tuple[RowStore, ...]
    padded: float = 0.0  # seconds of silence added after the audio to reach the length asked for
    cut: bool = False  # the audio went on past the length asked for
    gain: float = 1.0  # on the samples (quiet speech raised, dubber/audio/level.py)
    centre: bool = False  # a surround mix's centre channel alone was heard

    def close(self) -> None:
        for store in self.stores:
            store.close()


def stream_features(
    audio: str | Path,
    kind: str,
    encoder: SpeechEncoder | None = None,
    *,
    layer: int = 0,
    mel_config: MelConfig = MelConfig(),
    folder: str | Path | None = None,
    max_seconds: float | None = None,
    seconds: float | None = None,
    gain: float = 1.0,
    dialogue: bool = False,
    lead: float = 0.0,
) -> StreamedFeatures:
    """Decode ``audio`` once and compute the completer's input: ``kind`` "mel", "speech" or "mel+speech" (a speech
    kind needs ``encoder``); only its first ``max_seconds`` when given; exactly ``seconds`` when given (cut there,
    or followed by silence up to it: a speech stem read on the timeline of the audio it was mixed into); the samples
    multiplied by ``gain``, and a surround mix's centre channel alone with ``dialogue`` (``dubber.audio.level``).
    ``lead``: seconds after the features' start that the audio's first sample belongs (silence before it), or
    before (its first samples left out): a video's own sound lined up with its frames
    (``dubber.media.container.sound_lead``). Raises the decoder's typed errors; nothing is left on disk when it
    does."""
    if kind not in ("mel", "speech", "mel+speech"):
        raise ValueError(f"unknown audio input {kind!r}")
    if kind != "mel" and encoder is None:
        raise ValueError(f"{kind!r} features need a speech encoder")
    if kind != "mel" and mel_config.sample_rate != SAMPLE_RATE:
        raise ValueError(f"speech features need {SAMPLE_RATE} Hz audio; the mel config asks {mel_config.sample_rate}")
    with ExitStack() as undo:
        mel_rows = speech_rows = mel = speech = None
        if kind in ("mel", "mel+speech"):
            mel_rows = RowStore(mel_config.n_mels, folder=folder)
            undo.callback(mel_rows.close)
            mel = MelStream(mel_config)
        if kind in ("speech", "mel+speech"):
            speech_rows = RowStore(encoder.config.d_model, folder=folder)
            undo.callback(speech_rows.close)
            speech = SpeechStream(encoder, speech_rows.append, layer=layer)
        samples, held, held_count = 0, [], 0

        def feed() -> None:
            mono = np.concatenate(held)
            if mel is not None:
                mel_rows.append(mel.push(mono))
            if speech is not None:
                speech.push(mono)
            held.clear()

        def feed_silence(count: int) -> None:
            for start in range(0, count, rate):  # a second at a time, as decoded audio is fed
                held.append(np.zeros(min(rate, count - start), np.float32))
                feed()

        rate = mel_config.sample_rate
        exact = None if seconds is None else max(1, round(seconds * rate))
        asked = None if max_seconds is None else max(1, round(max_seconds * rate))
        most = min((n for n in (exact, asked) if n is not None), default=None)
        cut = False
        skip = max(0, round(-lead * rate))  # samples left out before the features' start
        samples = max(0, round(lead * rate))  # silence before the audio's first sample
        if most is not None:
            samples = min(samples, most)
        feed_silence(samples)
        with AudioReader(audio, sample_rate=rate, mono=True, dialogue=dialogue) as reader:
            centre = reader.centre_only
            blocks = (block for block in skip_samples(reader.blocks(), skip) if block.shape[1])
            for block in blocks:  # decoder frames (~1k samples) fed a second at a time: less overhead
                whole = block.shape[1]
                if most is not None:
                    block = block[:, : most - samples]
                held.append(block[0] if gain == 1.0 else block[0] * np.float32(gain))
                held_count += block.shape[1]
                samples += block.shape[1]
                if held_count >= mel_config.sample_rate:
                    feed()
                    held_count = 0
                if most is not None and samples >= most:
                    more = block.shape[1] < whole or next(blocks, None) is not None
                    cut = exact is not None and samples >= exact and more
                    break
        padding = 0 if exact is None else max(0, most - samples)
        feed_silence(padding)
        samples += padding
        if held:
            feed()
        if mel is not None:
            mel_rows.append(mel.finish())
        if speech is not None:
            speech.finish()
        undo.pop_all()
    stores = tuple(s for s in (mel_rows, speech_rows) if s is not None)
    mel_features = AudioFeatures(mel_rows, mel_config) if mel_rows is not None else None
    speech_features = SpeechFeatures(speech_rows) if speech_rows is not None else None
    if kind == "mel":
        features = mel_features
    elif kind == "speech":
        features = speech_features
    else:
        features = MelAndSpeechFeatures(mel_features, speech_features)
    return StreamedFeatures(features, samples / rate, stores, padded=padding / rate, cut=cut, gain=gain, centre=centre)
