"""``--batch-size auto`` (the default): how many output frames a dub decodes, renders and encodes together.

On the CPU, 8: the renderer runs 17.7, 20.0 and 20.3 crops a second at batch 4, 8 and 16 (one thread,
``benchmarks/bench_renderer.py``, docs/DUBBING.md), and a larger chunk only holds more frames in memory. On a GPU
the renderer is faster the larger its batch, so the chunk is as large as the GPU's free memory and the host's
allow, up to ``GPU_MOST``: every chunk in flight holds its frames in host memory (``CHUNKS_IN_FLIGHT``: the decode
queue, the chunk being drawn and the encode queue, dubber/pipeline/dub_pass.py), and each crop the renderer's
activations.
"""

from __future__ import annotations

import os

import torch

CPU_BATCH = 8
GPU_MOST = 64
# The renderer's memory per crop on a GPU, generously: 0.27 GB at the peak for a batch of 8 in float32 (`small`,
# 128 px crops, one step, its weights included; `dub bench`'s peak GPU memory on an H200).
GPU_BYTES_PER_CROP = 48 << 20
CHUNKS_IN_FLIGHT = 7
GPU_SHARE, HOST_SHARE = 0.5, 0.25  # of the free memory, what the chunks may take


def available_host_bytes() -> int | None:
    """The memory the system could give this process now (``MemAvailable``), or None where it cannot say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def auto_batch_size(
    device: torch.device | str,
    frame_size: tuple[int, int],
    *,
    free_gpu: int | None = None,
    free_host: int | None = None,
) -> int:
    """Frames per chunk for a dub of ``frame_size`` (width, height) frames on ``device``; ``free_gpu`` and
    ``free_host`` (bytes) are read from the device and the system when not given."""
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_BATCH
    if free_gpu is None:
        try:
            free_gpu = torch.cuda.mem_get_info(device)[0]
        except (RuntimeError, AssertionError):  # a driver that cannot say: the CPU's size is safe anywhere
            return CPU_BATCH
    if free_host is None:
        free_host = available_host_bytes()
    most = min(GPU_MOST, int(free_gpu * GPU_SHARE) // GPU_BYTES_PER_CROP)
    if free_host is not None:
        frame_bytes = frame_size[0] * frame_size[1] * 3
        most = min(most, int(free_host * HOST_SHARE) // (CHUNKS_IN_FLIGHT * frame_bytes))
    return max(1, most)
