"""Fades at the joins of spliced audio: where one span's waveform ends and the next one's starts (the video's own
sound cut off for the new speech, and back), the samples jump, which a listener hears as a click. Each join is
faded out and in over a few milliseconds; the spans keep their lengths, so the sound stays on the frames."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

FADE_SECONDS = 0.005  # long enough to remove the click, too short to hear as a fade


def fade_ramp(samples: int) -> np.ndarray:
    """(samples,) float32 rising from near 0 to near 1 along half a cosine (0 and 1 themselves lie just outside)."""
    t = (np.arange(samples, dtype=np.float64) + 0.5) / samples
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def faded(blocks: Iterable[np.ndarray], fade_in: int, fade_out: int) -> Iterator[np.ndarray]:
    """``blocks`` of (channels, n) samples, the first ``fade_in`` samples faded in and the last ``fade_out`` faded
    out (0: not), over as many samples as they hold; the same number of samples in all."""
    ramp_in, ramp_out = fade_ramp(fade_in), fade_ramp(fade_out)[::-1]
    done = 0
    held: np.ndarray | None = None  # the last ``fade_out`` samples seen, kept back until the span ends
    for block in blocks:
        if done < fade_in:
            n = min(fade_in - done, block.shape[1])
            block = block.copy()
            block[:, :n] *= ramp_in[done : done + n]
        done += block.shape[1]
        if fade_out:
            block = block if held is None else np.concatenate([held, block], axis=1)
            held, block = block[:, -fade_out:], block[:, :-fade_out]
        if block.shape[1]:
            yield block
    if held is not None and held.shape[1]:
        yield held * ramp_out[fade_out - held.shape[1] :]
