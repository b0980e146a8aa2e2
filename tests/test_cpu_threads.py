"""torch's threads follow the cores that are free now."""

from __future__ import annotations

import os

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
