"""Pure builders for encoder and container settings, kept apart so tests can check them as exact values."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from dubber.errors import OutputError

# Output extension -> FFmpeg muxer. WebM cannot hold H.264, so it is not offered.
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

# Audio codecs each muxer takes as a stream copy; anything else is re-encoded to AAC.
_COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac", "vorbis", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
}

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


@dataclass(frozen=True)
class VideoEncodeOptions:
    crf: int = 18  # visually lossless for talking heads; 23 is x264's default
    preset: str = "medium"
    pix_fmt: str = "yuv420p"  # what every player decodes
    threads: int = 0  # 0 = x264 chooses
    tune: str | None = None


@dataclass(frozen=True)
class AudioEncodeOptions:
    codec: str = "aac"
    bit_rate: int = 192_000


def container_format_for(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in _CONTAINERS:
        supported = ", ".join(sorted(_CONTAINERS))
        raise OutputError(path, f"unsupported output type '{ext or '(none)'}' (use one of {supported})")
    return _CONTAINERS[ext]


def can_copy_audio(container_format: str, codec_name: str) -> bool:
    return codec_name in _COPYABLE_AUDIO.get(container_format, set())


# x264 needs all of these for its AVX-512 code.
_AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def x264_cpu(cpu_flags: frozenset[str]) -> str | None:
    """The instruction sets x264 may use on a CPU with ``cpu_flags`` (/proc/cpuinfo names); None = its own choice.

    x264's AVX-512 code gives different output for the same frames from one encode to the next (up to 28 levels
    apart; docs/DESIGN-NOTES.md, Media), so seeded dubs would not reproduce; its AVX2 code is deterministic.
    Naming only sets the CPU has matters: x264 trusts the list and would crash on a missing instruction.
    """
    if _AVX512 <= cpu_flags and "avx2" in cpu_flags:
        return "AVX2"
    return None


@functools.cache
def host_cpu_flags() -> frozenset[str]:
    """This machine's CPU flags from /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def x264_options(opts: VideoEncodeOptions, cpu_flags: frozenset[str] = frozenset()) -> dict[str, str]:
    """libx264 private options, exactly as handed to FFmpeg, for a CPU with ``cpu_flags``."""
    if opts.preset not in X264_PRESETS:
        raise ValueError(f"preset={opts.preset!r} is not one of {', '.join(X264_PRESETS)}")
    if not 0 <= opts.crf <= 51:
        raise ValueError(f"crf={opts.crf} is outside 0..51")
    out = {"crf": str(opts.crf), "preset": opts.preset}
    if opts.tune:
        out["tune"] = opts.tune
    if cpu := x264_cpu(cpu_flags):
        out["x264-params"] = f"asm={cpu}"
    return out


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p subsamples chroma by 2 in both axes, so libx264 needs even sizes: odd ones grow by one pixel."""
    return width + (width & 1), height + (height & 1)
