"""``dub batch --ray ADDRESS``: a batch's items spread over a Ray cluster.

Each worker is a Ray actor that loads the pipeline once and dubs one item at a time (``run_item``, as the
single-process batch does: the output is written to a temporary name and renamed, a bad item is a failed result,
``--skip-existing`` looks at the output path when the item starts). A CPU worker asks Ray for ``cpus_per_worker``
cores and a GPU worker for one GPU. A worker that dies (out of memory, a lost node) is restarted by Ray and its item
tried again, up to ``retries`` times; an item that fails by itself (bad input) is not retried: it would fail again.
Outputs are written where the item says, so on a cluster of several machines the paths must be on storage they all
see (NFS, a mounted bucket).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dubber.errors import InputError
from dubber.log import get_logger
from dubber.pipeline.batch import BatchItem, ItemResult, run_item
from dubber.pipeline.options import DubOptions

log = get_logger("batch")

# Passed to every worker, so that a worker reads the weights, cache and face models the command line would.
FORWARDED_ENV = ("DUB_WEIGHTS", "DUB_CACHE", "DUB_FACE_MODELS", "DUB_ORT_PROVIDERS")


@dataclass(frozen=True)
class PipelineSpec:
    """What each worker loads: ``DubbingPipeline.from_pretrained``'s arguments."""

    weights: str
    device: str
    dtype: str
    runtime: str
    options: DubOptions


@dataclass(frozen=True)
class RaySettings:
    address: str  # "local" (a Ray started for this batch), "auto" (the cluster this machine belongs to), or an address
    workers: int | None = None  # None: as many as the cluster's free CPUs (or GPUs) allow, at most one per item
    cpus_per_worker: float = 1.0
    gpu: bool | None = False  # one GPU per worker; None: when the cluster has GPUs
    retries: int = 1  # attempts after a worker died
    env: dict[str, str] = field(default_factory=dict)


def require_ray():
    try:
        import ray
    except ImportError:
        raise InputError(None, "--ray needs ray: pip install 'dubber[cluster]'") from None
    return ray


def connect(settings: RaySettings) -> None:
    ray = require_ray()
    if ray.is_initialized():  # a caller (a notebook, a test) that started or joined Ray already
        return
    if settings.address == "local":
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=settings.address, log_to_driver=False)


def worker_count(settings: RaySettings, gpu: bool, items: int) -> int:
    ray = require_ray()
    if settings.workers is not None:
        return max(1, min(settings.workers, items))
    resources = ray.available_resources()
    slots = resources.get("GPU", 0) if gpu else resources.get("CPU", 1) / settings.cpus_per_worker
    return max(1, min(int(slots), items))


class _Worker:
    """One pipeline, loaded once; dubs the items it is given one after another."""

    def __init__(self, spec: PipelineSpec, threads: int) -> None:
        from dubber.pipeline.dubbing import DubbingPipeline

        if threads:  # the cores Ray gave this worker, not every core of the node
            import torch

            torch.set_num_threads(threads)
        self.pipe = DubbingPipeline.from_pretrained(
            spec.weights, device=spec.device, dtype=spec.dtype, options=spec.options, runtime=spec.runtime
        )

    def run(self, item: BatchItem, skip_existing: bool, overwrite: bool) -> ItemResult:
        return run_item(self.pipe, item, skip_existing=skip_existing, overwrite=overwrite)


def run_on_ray(
    items: list[BatchItem],
    spec: PipelineSpec,
    settings: RaySettings,
    *,
    skip_existing: bool = False,
    overwrite: bool = False,
    on_result: Callable[[int, ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Every item's result (in the items' order); ``on_result(index, result)`` as each one finishes."""
    ray = require_ray()
    from ray.exceptions import RayActorError, RayTaskError

    connect(settings)
    gpu = settings.gpu if settings.gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ} | settings.env
    threads = 0 if gpu else max(1, int(settings.cpus_per_worker))
    actor = ray.remote(_Worker).options(
        num_cpus=0 if gpu else settings.cpus_per_worker,
        num_gpus=1 if gpu else 0,
        max_restarts=settings.retries,
        max_task_retries=0,  # a task lost with its worker is resubmitted here, counted against ``retries``
        runtime_env={"env_vars": env},
    )
    workers = [actor.remote(spec, threads) for _ in range(worker_count(settings, gpu, len(items)))]
    log.info("dubbing %d item(s) on %d Ray worker(s)", len(items), len(workers))
    results: list[ItemResult | None] = [None] * len(items)
    queue = deque((i, 0) for i in range(len(items)))
    idle = deque(workers)
    pending: dict = {}
    while queue or pending:
        while queue and idle:
            index, attempts = queue.popleft()
            worker = idle.popleft()
            pending[worker.run.remote(items[index], skip_existing, overwrite)] = (index, attempts, worker)
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        index, attempts, worker = pending.pop(ref)
        idle.append(worker)
        try:
            result = ray.get(ref)
        except (RayActorError, RayTaskError) as exc:
            if attempts < settings.retries:
                log.warning("%s: its worker failed (%s); trying again", items[index].video, type(exc).__name__)
                queue.append((index, attempts + 1))
                continue
            result = ItemResult(items[index], "failed", f"{items[index].video}: its Ray worker failed: {exc}")
        results[index] = result
        if on_result is not None:
            on_result(index, result)
    for worker in workers:
        ray.kill(worker)
    return results
