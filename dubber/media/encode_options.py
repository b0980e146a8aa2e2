"""Pure builders for encoder and container settings, kept apart so tests can check them as exact values."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import av

from dubber.errors import OutputError

# Output extension -> FFmpeg muxer. WebM holds VP9 and Opus (it cannot hold H.264 or AAC).
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
OUTPUT_SUFFIXES = tuple(sorted(_CONTAINERS))

# Audio codecs each muxer takes as a stream copy; anything else is re-encoded (AAC; Opus in WebM).
_COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac", "vorbis", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
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


def muxer_options(container_format: str) -> dict[str, str]:
    """Matroska and WebM write a random segment id into every file unless told to be bit-exact: the same dub would
    never give the same bytes twice (MP4 and MOV hold no such field)."""
    return {"fflags": "+bitexact"} if container_format in ("matroska", "webm") else {}


def audio_options_for(container_format: str, options: AudioEncodeOptions) -> AudioEncodeOptions:
    """The audio encoder a container takes: Opus in WebM (at the same bit rate), the options as given elsewhere."""
    if container_format == "webm" and options.codec not in ("libopus", "opus"):
        return replace(options, codec="libopus")
    return options


def encode_rate(codec: str, sample_rate: int) -> int:
    """``sample_rate`` where ``codec`` takes it, else the lowest rate it takes above it (else its highest): Opus
    encodes 8, 12, 16, 24 and 48 kHz only, so 44.1 kHz speech is resampled to 48 kHz."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or sample_rate in rates:
        return int(sample_rate)
    above = [r for r in rates if r > sample_rate]
    return int(min(above) if above else max(rates))


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


# x264 preset -> (libvpx deadline, cpu-used): VP9 at about the speed x264 has at that preset (720p, 2 cores:
# realtime 4 ~26 fps against x264 medium's ~26-30, realtime 6 ~55 against veryfast's ~64). libvpx's "good" mode
# compresses better but runs at a third of that speed (8 fps at cpu-used 5), so only the slow presets take it.
VP9_SPEEDS = {
    "ultrafast": ("realtime", 8),
    "superfast": ("realtime", 7),
    "veryfast": ("realtime", 6),
    "faster": ("realtime", 5),
    "fast": ("realtime", 5),
    "medium": ("realtime", 4),
    "slow": ("good", 5),
    "slower": ("good", 4),
    "veryslow": ("good", 3),
}


def vp9_options(opts: VideoEncodeOptions) -> dict[str, str]:
    """libvpx-vp9 options, exactly as handed to FFmpeg: constant quality at ``crf`` on VP9's own 0-63 scale (18 at
    the medium preset: 41.4 dB PSNR on a 720p talking head at the size x264's 18 reaches 43.3 dB), row threads;
    CRF 0 lossless."""
    if opts.preset not in VP9_SPEEDS:
        raise ValueError(f"preset={opts.preset!r} is not one of {', '.join(X264_PRESETS)}")
    if not 0 <= opts.crf <= 51:
        raise ValueError(f"crf={opts.crf} is outside 0..51")
    deadline, speed = VP9_SPEEDS[opts.preset]
    out = {"crf": str(opts.crf), "b": "0", "deadline": deadline, "cpu-used": str(speed), "row-mt": "1"}
    if opts.crf == 0:
        out["lossless"] = "1"  # as x264's CRF 0 is; VP9's is not lossless on its own
    return out


def video_encoder(
    container_format: str, opts: VideoEncodeOptions, cpu_flags: frozenset[str] = frozenset()
) -> tuple[str, dict[str, str]]:
    """(FFmpeg encoder, its options) for a container: VP9 in WebM, H.264 elsewhere."""
    if container_format == "webm":
        return "libvpx-vp9", vp9_options(opts)
    return "libx264", x264_options(opts, cpu_flags)


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p subsamples chroma by 2 in both axes, so libx264 needs even sizes: odd ones grow by one pixel."""
    return width + (width & 1), height + (height & 1)
