"""How many frames a video's mouth follows its own sound: the recording's offset between picture and sound.

Web and broadcast recordings carry their sound up to a few frames early or late against the picture (a property of
the recording and its processing, not of the speaker's speech). The completer's plan of the video's own speech
times the mouth from the sound, so the shift that best lines the plan up with the mouth tracked on the same frames
is the recording's offset. Two uses: adaptation learns from the video's sound and mouth lined up, so that it does
not learn the recording's offset (a dub's new audio does not have it); and ``dub eval --protocol split``, whose
truth (the second half's mouth) carries the same offset against the speech it dubs, scores the dub at the offset
read on the first half too (docs/QUALITY.md "The recording's own offset").

Convention: a lag of ``s`` frames means the mouth at frame ``i`` is the one the sound at frame ``i - s`` belongs
to (``s > 0``: the sound comes first).
"""

from __future__ import annotations

import numpy as np

MAX_LAG_SECONDS = 0.16  # the offsets measured on the shared clips stay within 0.08 s; 0.16 s leaves room for more
MIN_SECONDS = 2.0  # of frames with both openings known: a handful of syllables; shorter halves misread by a frame
MIN_CORRELATION = 0.3  # at the best shift: a plan that follows this mouth less cannot time it


def lined_up(driven: np.ndarray, mouth: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``driven`` (timed by the sound) and ``mouth`` (timed by the picture) that belong together at
    ``lag``: ``driven[i - lag]`` beside ``mouth[i]``."""
    n = min(len(driven), len(mouth))
    if abs(lag) >= n:
        return driven[:0], mouth[:0]
    if lag >= 0:
        return driven[: n - lag], mouth[lag:n]
    return driven[-lag:n], mouth[: n + lag]


# Not dubber.evaluation.metrics.correlation: the pipeline may not import the evaluation layer (tests/test_layers.py).
def _correlation(a: np.ndarray, b: np.ndarray, least: int) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < least:
        return None
    a, b = a[ok].astype(np.float64), b[ok].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / scale) if scale > 1e-12 else None


def best_lag(
    planned: np.ndarray, tracked: np.ndarray, fps: float, max_seconds: float = MAX_LAG_SECONDS
) -> tuple[int, float] | None:
    """(lag, correlation): the shift within ``max_seconds`` at which the opening ``planned`` from a video's own
    sound follows the mouth ``tracked`` on it best (NaN where either is missing), and how well; None with too few
    frames. The correlation says whether the sound is the face's at all (a voice-over or music: near 0)."""
    most = max(1, int(round(max_seconds * fps)))
    least = max(3, int(round(MIN_SECONDS * fps)))
    scores = {}
    for lag in range(-most, most + 1):
        value = _correlation(*lined_up(planned, tracked, lag), least)
        if value is not None:
            scores[lag] = value
    if not scores:
        return None
    best = max(scores, key=lambda lag: (scores[lag], -abs(lag)))
    return best, scores[best]


def lag_from_openings(planned: np.ndarray, tracked: np.ndarray, fps: float) -> int | None:
    """The lag (frames) of the mouth ``tracked`` on a video behind the opening ``planned`` from its own sound (NaN
    where either is missing); None when the two cannot time each other (too few frames, too weak a match)."""
    found = best_lag(planned, tracked, fps)
    return found[0] if found is not None and found[1] >= MIN_CORRELATION else None
