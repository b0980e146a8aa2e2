"""``dub bench``: frames/s per stage and end to end, peak memory, and the ratio to a plain decode + encode of the
same clip measured in the same run (so the ratio does not depend on the machine)."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.transcode import reencode
from dubber.pipeline.dubbing import DubbingPipeline
from dubber.pipeline.options import DubResult
from dubber.pipeline.phase_clock import cpu_seconds


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


@dataclass
class BenchReport:
    video: str
    frames: int
    width: int
    height: int
    steps: int
    device: str
    runtime: str
    end_to_end_fps: float
    plain_reencode_fps: float
    slowdown_vs_reencode: float  # dub seconds / plain decode+encode seconds
    wall_seconds: float = 0.0  # the dub, end to end
    overlap: float = 0.0  # the stages' busy seconds over the wall time: above 1 where stages ran at once
    stage_seconds: dict[str, float] = field(default_factory=dict)  # each stage's busy time
    stage_fps: dict[str, float] = field(default_factory=dict)
    # CPU seconds per frame (all threads) of the dub and of the plain re-encode, and the cores the dub kept busy on
    # average: on a machine whose cores the dub cannot fill, the ratio to a re-encode is bounded by the first two.
    cpu_ms_per_frame: float = 0.0
    reencode_cpu_ms_per_frame: float = 0.0
    cores_busy: float = 0.0
    # Per phase of the dub (audio, analyse, plan, dub), its wall seconds and the cores it kept busy (DubResult).
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    # Frames with a face redrawn, and those of them the renderer network drew (the reference blend pastes the others
    # as the warped hint, which costs no network time: the render stage follows the second number).
    face_frames: int = 0
    network_frames: int = 0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None
    settings: dict = field(default_factory=dict)  # the dub's (``DubResult.settings``): batch size, paste, segments...

    def to_dict(self) -> dict:
        return asdict(self)


def benchmark(pipe: DubbingPipeline, video: str | Path, audio: str | Path, **overrides) -> BenchReport:
    import torch

    opts = pipe.options.updated(**overrides)
    cuda = pipe.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(pipe.device)
    with tempfile.TemporaryDirectory(prefix="dub-bench-") as tmp:
        t0, c0 = time.perf_counter(), cpu_seconds()
        plain_frames = reencode(
            video, Path(tmp) / "plain.mp4", options=VideoEncodeOptions(crf=opts.crf, preset=opts.preset)
        )
        plain_s, plain_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        c0 = cpu_seconds()
        result: DubResult = pipe(video, audio, Path(tmp) / "dub.mp4", options=opts, overwrite=True)
        dub_cpu = cpu_seconds() - c0
    total = result.timings["total"]
    stages = {k: v for k, v in result.timings.items() if k != "total"}
    return BenchReport(
        video=str(video),
        frames=result.frames,
        width=result.width,
        height=result.height,
        steps=opts.steps or pipe.renderer.default_steps,
        device=str(pipe.device),
        runtime=pipe.runtime,
        end_to_end_fps=result.frames / total,
        plain_reencode_fps=plain_frames / plain_s,
        slowdown_vs_reencode=(total / result.frames) / (plain_s / plain_frames),
        wall_seconds=round(total, 3),
        overlap=round(sum(stages.values()) / total, 3),
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
        stage_fps={k: round(result.frames / v, 2) for k, v in stages.items() if v > 0},
        cpu_ms_per_frame=round(1e3 * dub_cpu / max(result.frames, 1), 1),
        reencode_cpu_ms_per_frame=round(1e3 * plain_cpu / max(plain_frames, 1), 1),
        cores_busy=round(dub_cpu / total, 2),
        phases=result.phases,
        face_frames=result.face_frames,
        network_frames=result.network_frames,
        peak_rss_mb=round(peak_rss_mb(), 1),
        peak_gpu_mb=round(torch.cuda.max_memory_allocated(pipe.device) / 2**20, 1) if cuda else None,
        settings=result.settings,
    )
