"""``--batch-size auto``: 8 on the CPU; on a GPU as many frames as its free memory and the host's allow."""

from __future__ import annotations

import pytest

from dubber.cli.dub_options import parse_batch_size
from dubber.errors import InputError
from dubber.pipeline import DubOptions
from dubber.pipeline.auto_batch import (
    CHUNKS_IN_FLIGHT,
    GPU_BYTES_PER_CROP,
    GPU_MOST,
    auto_batch_size,
    available_host_bytes,
)

GB = 1 << 30
HD = (1920, 1080)


def test_the_cpu_renders_eight_frames_at_a_time():
    assert auto_batch_size("cpu", HD) == 8
    assert auto_batch_size("cpu", (7680, 4320), free_host=1 << 20) == 8  # memory is not what limits the CPU


def test_a_gpu_takes_what_its_memory_and_the_hosts_allow():
    assert auto_batch_size("cuda", HD, free_gpu=140 * GB, free_host=100 * GB) == GPU_MOST  # an idle H200
    # A GPU that other work fills: half its free memory, a crop's share each.
    assert auto_batch_size("cuda", HD, free_gpu=1 * GB, free_host=100 * GB) == (GB // 2) // GPU_BYTES_PER_CROP
    # 4K frames on a host with 2 GB to spare: a quarter of it over the chunks in flight.
    frame = 3840 * 2160 * 3
    assert auto_batch_size("cuda", (3840, 2160), free_gpu=140 * GB, free_host=2 * GB) == (
        (2 * GB // 4) // (CHUNKS_IN_FLIGHT * frame)
    )
    assert auto_batch_size("cuda", HD, free_gpu=0, free_host=0) == 1  # never none
    assert auto_batch_size("cuda", HD, free_gpu=140 * GB, free_host=None) == GPU_MOST  # a host that cannot say


def test_a_gpu_that_cannot_say_gets_the_cpus_size(monkeypatch):
    import torch

    def no_answer(device=None):
        raise RuntimeError("CUDA driver error")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_answer)
    assert auto_batch_size("cuda", HD, free_host=100 * GB) == 8


def test_the_host_says_what_it_has():
    free = available_host_bytes()
    assert free is None or free > 0


def test_batch_size_is_a_number_or_auto():
    assert parse_batch_size("auto") is None and parse_batch_size(" AUTO ") is None and parse_batch_size("16") == 16
    for bad in ("0", "-2", "many", "1.5"):
        with pytest.raises(InputError, match="--batch-size"):
            parse_batch_size(bad)
    assert DubOptions().batch_size is None
    with pytest.raises(InputError, match="batch_size=0"):
        DubOptions(batch_size=0)
