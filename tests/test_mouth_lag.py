"""The lag of a video's mouth behind its own sound: read from the plan of its own speech against its tracked mouth,
used by adaptation (it learns each mouth from the sound it belongs to) and by the split protocol's scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.pipeline.adaptation import AdaptationSettings, adapt_completer
from dubber.pipeline.mouth_lag import MIN_CORRELATION, MIN_SECONDS, best_lag, lag_from_openings, lined_up
from tests.test_adaptation import _clip, _error


def _speech_like(frames: int, seed: int = 0) -> np.ndarray:
    """A mouth opening that moves at syllable rate (a few frames per opening), smooth like a tracked one."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=frames + 8)
    return np.convolve(raw, np.hanning(5) / np.hanning(5).sum(), mode="same")[4:-4]


def test_lined_up_pairs_each_mouth_with_the_sound_frames_before_it():
    driven, mouth = np.arange(10.0), np.arange(10.0) + 100
    a, b = lined_up(driven, mouth, 2)
    assert (b - a == 102).all() and len(a) == 8  # mouth[i] beside driven[i - 2]
    a, b = lined_up(driven, mouth, -3)
    assert (b - a == 97).all() and len(a) == 7
    a, b = lined_up(driven, mouth, 0)
    assert (a == driven).all() and (b == mouth).all()
    assert len(lined_up(driven, mouth, 12)[0]) == 0


def test_the_lag_is_the_shift_that_lines_the_plan_up_with_the_tracked_mouth():
    planned = _speech_like(200)
    rng = np.random.default_rng(1)
    for lag in (-3, -1, 0, 2, 4):
        tracked = np.roll(planned, lag) * 1.7 + 0.3 + rng.normal(0, 0.1, 200)  # tracked[i] = planned[i - lag]
        tracked[:4], tracked[-4:] = np.nan, np.nan  # the roll's wrapped ends: not seen
        assert lag_from_openings(planned, tracked, 25.0) == lag
    far = np.roll(planned, 6)
    far[:6] = np.nan
    assert lag_from_openings(planned, far, 50.0) == 6  # 0.12 s: at 50 fps within the search (0.16 s)...
    assert lag_from_openings(planned, far, 25.0) != 6  # ...at 25 fps beyond it
    tracked = np.roll(planned, 3)
    tracked[60:190] = np.nan  # 2.8 s seen
    assert lag_from_openings(planned, tracked, 25.0) == 3
    tracked[40:] = np.nan
    assert np.isfinite(tracked).sum() < MIN_SECONDS * 25 and lag_from_openings(planned, tracked, 25.0) is None
    unrelated = _speech_like(200, seed=7)
    assert lag_from_openings(planned, unrelated, 25.0) is None  # a plan that does not follow this mouth cannot time it
    assert abs(best_lag(planned, unrelated, 25.0)[1]) < MIN_CORRELATION  # ... and says how little it follows it
    lag, match = best_lag(planned, np.roll(planned, 2) * 1.7 + 0.3, 25.0)
    assert lag == 2 and match > 0.9


def test_adaptation_learns_each_mouth_from_the_sound_it_belongs_to():
    torch.manual_seed(0)
    model = LandmarkCompleter(LandmarkCompleterConfig.named("tiny")).eval()
    track, features = _clip()
    lag = 3  # a recording whose picture runs 3 frames behind its sound
    late_points = np.concatenate([np.repeat(track.points[:1], lag, 0), track.points[:-lag]])
    late = replace(track, points=late_points)
    refs = track.landmark_references(model.config.n_refs)
    settings = AdaptationSettings(steps=60, seconds=600.0, lr=3e-3, batch_size=16, mix=1.0)
    lined, _ = adapt_completer(model, late, features, refs, settings, lag=lag)
    offset, _ = adapt_completer(model, late, features, refs, settings)
    # Judged on the speaker heard in sync (what a dub's new audio is): the lined-up model learnt the mouth's timing.
    assert _error(lined, track, features, refs) < 0.8 * _error(offset, track, features, refs)
