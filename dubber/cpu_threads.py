"""How many threads torch should use: the cores free to this process now, not all of them.

torch's CPU kernels spin their threads; when other work holds the cores, a thread per core makes every stage wait
on preempted threads. Measured on a 2-core machine whose cores a training run kept busy: the demo dubbed at 4.1
frames/s with 2 threads and 8.6 with 1 (the landmark stage 19.1 s against 3.4 s; docs/DUBBING.md "Speed and memory").
The thread count does not change the output: the demo's bytes are the same with 1 and 2 threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from dubber.log import get_logger

log = get_logger("cpu")

_SAMPLE_SECONDS = 0.1


def read_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where there is none (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), or the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_cores(
    sample: Callable[[], tuple[float, float] | None] = read_cpu_times, seconds: float = _SAMPLE_SECONDS
) -> int:
    """The usable cores that were idle over ``seconds`` (at least 1), from two samples of the machine's CPU times."""
    cores = usable_cores()
    first = sample()
    time.sleep(seconds)
    second = sample()
    if first is None or second is None or second[1] <= first[1]:
        return cores
    busy_share = (second[0] - first[0]) / (second[1] - first[1])
    machine = os.cpu_count() or cores
    idle = machine * (1.0 - busy_share)
    return max(1, min(cores, int(idle + 0.5)))


def use_free_cores(reserve: int = 0) -> int:
    """Set torch's thread count to the free cores less ``reserve`` (at least 1; ``OMP_NUM_THREADS``, when set,
    wins); returns the count. A dub whose stages overlap reserves a core for decoding and encoding."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    free = free_cores()
    threads = max(1, free - reserve)
    torch.set_num_threads(threads)
    log.info("torch uses %d thread(s): %d of %d usable cores free", threads, free, usable_cores())
    return threads


def start_torch_thread() -> None:
    """Gives this thread the thread count torch is set to. OpenMP keeps a team size per thread, and torch sets a new
    thread's only when that thread first asks it for its count (which its own parallel loops do): until then the
    oneDNN and MKL kernels a thread runs (convolutions, matrix products) use OpenMP's default, every core, however
    torch was set. A dub's worker threads, with torch set to one thread on two cores, computed their products on two
    threads each (the cores oversubscribed) and in another order than the main thread (values a float ulp apart)."""
    import torch

    torch.set_num_threads(torch.get_num_threads())
