"""torch's threads follow the cores that are free now."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from dubber import cpu_threads


def _samples(*values):
    it = iter(values)
    return lambda: next(it)


@pytest.mark.parametrize(
    ("busy_share", "expected"),
    [(0.0, 2), (0.5, 1), (0.95, 1)],
    ids=["idle", "half busy", "busy"],
)
def test_free_cores_counts_the_idle_share_of_the_usable_cores(monkeypatch, busy_share, expected):
    monkeypatch.setattr(cpu_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    sample = _samples((100.0, 1000.0), (100.0 + 100 * busy_share, 1100.0))
    assert cpu_threads.free_cores(sample, seconds=0) == expected


def test_free_cores_without_proc_stat_is_every_usable_core(monkeypatch):
    monkeypatch.setattr(cpu_threads, "usable_cores", lambda: 3)
    assert cpu_threads.free_cores(_samples(None, None), seconds=0) == 3
    assert cpu_threads.read_cpu_times() is None or cpu_threads.read_cpu_times()[1] > 0


def test_omp_num_threads_wins(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(cpu_threads, "free_cores", lambda: pytest.fail("measured though OMP_NUM_THREADS is set"))
    assert cpu_threads.use_free_cores() == before
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cpu_threads, "free_cores", lambda: 1)
    try:
        assert cpu_threads.use_free_cores() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_started_thread_plans_as_the_thread_that_set_torch(one_torch_thread):
    """A worker's first prediction, once the worker is started (``start_torch_thread``), is the main thread's to
    the bit: before torch first sets a new thread's OpenMP team, its oneDNN/MKL kernels use every core, and the
    tiny completer's first plan in a new thread came out a float ulp apart on an AMX host."""
    from dubber.models.landmark_completer import LandmarkCompleter, LandmarkCompleterConfig
    from dubber.models.landmark_sequence import predict_sequence

    torch.manual_seed(0)
    model = LandmarkCompleter(LandmarkCompleterConfig.named("tiny")).eval()
    with torch.no_grad():  # zero-initialised heads would predict the mean shape whatever was computed before them
        model.lip_head.weight.normal_(0, 0.05)
        model.jaw_head.weight.normal_(0, 0.05)
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(40, model.config.audio_steps, 80)).astype(np.float32)
    pose, refs = rng.random((40, 74, 2)).astype(np.float32), rng.random((4, 131, 2)).astype(np.float32)
    with ThreadPoolExecutor(1, initializer=cpu_threads.start_torch_thread) as pool:
        got = pool.submit(predict_sequence, model, windows, pose, refs).result()  # the worker's first plan
    np.testing.assert_array_equal(got, predict_sequence(model, windows, pose, refs))
    assert torch.get_num_threads() == 1
