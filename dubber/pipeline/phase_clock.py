"""Wall and CPU time of a dub's phases, one after another: how many cores each phase kept busy shows where a dub
leaves the machine idle (a serial part) and where it is bound by CPU work (docs/DUBBING.md "Speed and memory")."""

from __future__ import annotations

import os
import time


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system, all its threads (the encoder's and decoder's included)."""
    t = os.times()
    return t.user + t.system


class PhaseClock:
    """``lap(name)`` closes the phase running since the clock started or since the last lap."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), cpu_seconds()
        seconds = wall - self._wall
        used = self.phases.get(name, {"seconds": 0.0, "cpu_seconds": 0.0})
        self.phases[name] = {"seconds": used["seconds"] + seconds, "cpu_seconds": used["cpu_seconds"] + cpu - self._cpu}
        self._wall, self._cpu = wall, cpu


def phase_report(phases: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per phase its wall seconds and the cores it kept busy on average (CPU seconds over wall seconds), rounded."""
    return {
        name: {"seconds": round(p["seconds"], 3), "cores": round(p["cpu_seconds"] / max(p["seconds"], 1e-9), 2)}
        for name, p in phases.items()
    }
