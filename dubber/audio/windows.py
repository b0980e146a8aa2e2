"""Per-frame mel windows chosen by timestamp, so every frame rate (24, 25, 29.97, 30, 50, variable) aligns."""

from __future__ import annotations

import numpy as np

from dubber.audio.mel import MelConfig
from dubber.audio.rows import Rows, RowStore, take_rows

WINDOW_STEPS = 16  # 0.2 s of mel at 80 steps/s
SPEECH_WINDOW_STEPS = 10  # 0.2 s of speech-encoder features at 50 steps/s: the mel windows' span


def window_starts(times: np.ndarray, config: MelConfig = MelConfig(), steps: int = WINDOW_STEPS) -> np.ndarray:
    """Index of the first mel step of each frame's window: the ``steps`` steps whose centres lie nearest ``t``.

    Step ``k`` is centred at ``k / steps_per_second``; the window for ``t`` is ``[c - steps/2, c + steps/2)`` with
    ``c`` the step nearest ``t``, so its middle sits within half a step (6 ms) of the frame's time.
    """
    t = np.asarray(times, dtype=np.float64)
    centre = np.floor(t * config.steps_per_second + 0.5).astype(np.int64)
    return centre - steps // 2


def frame_windows(
    mel: Rows, times: np.ndarray, config: MelConfig = MelConfig(), steps: int = WINDOW_STEPS
) -> np.ndarray:
    """(frames, steps, n_mels) windows of ``mel`` (steps, n_mels) for frames at ``times`` seconds.

    Steps before the audio's start or after its end read as silence, so a video longer than its audio still gets
    a window for every frame. Only the rows the windows cover are read (``mel`` may be a :class:`RowStore`).
    """
    width = mel.width if isinstance(mel, RowStore) else (mel.shape[1] if mel.ndim == 2 else config.n_mels)
    index = window_starts(times, config, steps)[:, None] + np.arange(steps)[None, :]
    inside = (index >= 0) & (index < len(mel))
    if not inside.any():
        return np.full((*index.shape, width), config.silence, dtype=np.float32)
    rows = take_rows(mel, np.clip(index, 0, len(mel) - 1))
    return np.where(inside[..., None], rows, np.float32(config.silence)).astype(np.float32, copy=False)
