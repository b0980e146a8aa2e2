"""What a media file holds: streams, exact rational fps, duration, frame count, rotation, variable frame rate, and
whether the frames carry timestamps at all (a raw H.264 stream does not).

Frame counts and durations come from demuxing the packets (no decoding), so they are exact for every container,
including Matroska/WebM which store no frame count, and a truncated file is caught before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubber.errors import EmptyMediaError, MediaDecodeError, NoVideoStreamError
from dubber.log import get_logger
from dubber.media.container import main_audio_stream, main_video_stream, open_input

log = get_logger("media")

# A 1-tick rounding of the container's clock (e.g. Matroska's 1 ms for 29.97 fps) is not variable frame rate.
_VFR_RELATIVE_TOLERANCE = 0.02
_VFR_MIN_FRACTION = 0.01


# Frames without timestamps (a raw H.264 stream) or whose timestamps do not advance (a broken muxer) are read at
# the stream's own nominal rate when it is a frame rate, else at FFmpeg's default for raw video.
_UNTIMED_RATES = (1, 240)
_UNTIMED_DEFAULT_FPS = Fraction(25)

_MATRICES = {1: "BT.709", 4: "FCC", 5: "BT.601", 6: "BT.601", 7: "SMPTE 240M", 9: "BT.2020", 10: "BT.2020"}


@dataclass(frozen=True)
class ColourTags:
    """How a stream's samples stand for colours, in FFmpeg's numbering (2, and 0 for the range: unspecified)."""

    colorspace: int = 2  # the matrix between YUV and RGB (1: BT.709, 5/6: BT.601, 9: BT.2020)
    primaries: int = 2
    transfer: int = 2
    range: int = 0  # 1: limited ("MPEG"), 2: full ("JPEG")

    def describe(self) -> str:
        """The matrix and range in words ("BT.709, limited range"); empty where unspecified."""
        matrix = _MATRICES.get(self.colorspace)
        ranges = {1: "limited range", 2: "full range"}
        return ", ".join(p for p in (matrix, ranges.get(self.range)) if p)

    @classmethod
    def of(cls, codec_context) -> ColourTags:
        return cls(
            int(codec_context.colorspace),
            int(codec_context.color_primaries),
            int(codec_context.color_trc),
            int(codec_context.color_range),
        )


@dataclass(frozen=True)
class VideoStreamInfo:
    index: int
    codec: str
    width: int  # as displayed, rotation applied
    height: int
    coded_width: int
    coded_height: int
    pix_fmt: str | None
    fps: Fraction  # nominal (average) rate; exact rational such as 30000/1001
    time_base: Fraction
    start_time: float
    duration: float
    frame_count: int
    rotation: int  # degrees counter-clockwise applied to display frames upright (0, 90, 180, -90)
    variable_frame_rate: bool
    colour: ColourTags = ColourTags()
    # False: the frames carry no usable timestamps and frame i is at i / fps (``untimed_rate``).
    timestamps: bool = True
    # A pixel's width over its height as displayed upright (anamorphic video: 64/45 for a 16:9 PAL DVD); None: square.
    sample_aspect: Fraction | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        d["fps_float"] = float(self.fps)
        d["time_base"] = f"{self.time_base.numerator}/{self.time_base.denominator}"
        if self.sample_aspect is not None:
            d["sample_aspect"] = f"{self.sample_aspect.numerator}/{self.sample_aspect.denominator}"
        return d


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format_name: str
    duration: float
    video: VideoStreamInfo | None
    audio: AudioStreamInfo | None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format_name,
            "duration": self.duration,
            "video": self.video.to_dict() if self.video else None,
            "audio": self.audio.to_dict() if self.audio else None,
        }


def _first_frame_rotation(container: av.container.InputContainer, stream) -> int:
    """Display-matrix rotation; PyAV exposes it on decoded frames, so read the first one."""
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation / 90.0)) * 90 % 360 if frame.rotation else 0
    except av.error.FFmpegError:
        return 0
    return 0


def _normalise_rotation(deg: int) -> int:
    deg %= 360
    return deg - 360 if deg > 180 else deg


def is_variable_frame_rate(pts: np.ndarray) -> bool:
    """True when frame-to-frame pts steps vary by more than the container clock's rounding."""
    if pts.size < 3:
        return False
    steps = np.diff(np.sort(pts))
    steps = steps[steps > 0]
    if steps.size < 2:
        return False
    median = float(np.median(steps))
    tolerance = max(1.0, _VFR_RELATIVE_TOLERANCE * median)
    off = np.abs(steps - median) > tolerance
    return bool(off.mean() > _VFR_MIN_FRACTION)


def declared_duration(stream, tb: Fraction) -> float | None:
    """The duration a stream's container declares (MP4 header, or Matroska's DURATION tag), in seconds."""
    if stream.duration:
        return float(stream.duration * tb)
    tag = (stream.metadata or {}).get("DURATION")  # written by FFmpeg's Matroska muxer as HH:MM:SS.fffffffff
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


def untimed_rate(stream) -> Fraction:
    """The frame rate of a stream whose frames carry no usable timestamps: its codec's or container's nominal rate
    when that is a plausible frame rate, else FFmpeg's default for raw video (25)."""
    for rate in (stream.guessed_rate, stream.base_rate):
        if rate and _UNTIMED_RATES[0] <= rate <= _UNTIMED_RATES[1]:
            return Fraction(rate)
    return _UNTIMED_DEFAULT_FPS


def timestamps_advance(pts: np.ndarray) -> bool:
    """Whether packet timestamps can time the frames: at least half of them distinct (all equal is a broken muxer;
    a few repeats are a variable-rate clock's rounding)."""
    return pts.size > 0 and 2 * np.unique(pts).size >= pts.size


def pixel_aspect(stream, rotation: int) -> Fraction | None:
    """The stream's sample aspect ratio (the container's, else the codec's) for its upright frames; None where the
    pixels are square or it is not given."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sar or sar <= 0 or sar == 1:
        return None
    sar = Fraction(sar)
    return 1 / sar if rotation in (90, -90) else sar


def _video_info(path: Path, container: av.container.InputContainer) -> VideoStreamInfo:
    stream = main_video_stream(container)
    tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    pts_list: list[int] = []
    ends: list[int] = []
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if packet.pts is None:
                continue
            pts_list.append(packet.pts)
            ends.append(packet.pts + (packet.duration or 0))
    except av.error.FFmpegError as exc:
        raise MediaDecodeError(path, f"corrupt video data ({exc.strerror or exc})") from None
    if not packets:
        raise EmptyMediaError(path, "the video stream holds no frames")
    pts = np.asarray(pts_list, dtype=np.int64)
    timed = timestamps_advance(pts)
    count = int(pts.size) if timed else packets
    declared = int(stream.frames or 0)
    if declared > count:
        raise MediaDecodeError(path, f"file is truncated: {count} of {declared} video frames are present")

    if timed:
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = Fraction(fps) if fps else None
        first = int(pts.min())
        last_end = max(int(max(ends)), int(pts.max()))
        if last_end == int(pts.max()) and fps:  # packets without durations
            last_end += round(1 / (fps * tb))
        duration = float((last_end - first) * tb)
        if not fps or fps <= 0:
            fps = Fraction(count) / Fraction(duration).limit_denominator(1_000_000)
        fps = fps.limit_denominator(1001 * 1000) if fps.denominator > 1_000_000 else fps
        start = float(first * tb)
        # Matroska stores no frame count: a declared stream duration well past the demuxed end means lost data.
        declared_s = declared_duration(stream, tb)
        if declared_s is not None and declared_s - duration > max(0.5, 3 / float(fps)):
            raise MediaDecodeError(path, f"file is truncated: {duration:.2f} s of {declared_s:.2f} s are present")
    else:
        fps = untimed_rate(stream)
        duration, start = float(count / fps), 0.0

    try:
        container.seek(0, stream=stream)
        rotation = _normalise_rotation(_first_frame_rotation(container, stream))
    except av.error.FFmpegError:
        log.debug("%s: cannot seek back to read the rotation; assuming none", path)
        rotation = 0
    cw, ch = stream.codec_context.width, stream.codec_context.height
    w, h = (ch, cw) if rotation in (90, -90) else (cw, ch)
    return VideoStreamInfo(
        index=stream.index,
        codec=stream.codec_context.name,
        width=w,
        height=h,
        coded_width=cw,
        coded_height=ch,
        pix_fmt=stream.codec_context.pix_fmt,
        fps=fps,
        time_base=tb,
        start_time=start,
        duration=duration,
        frame_count=count,
        rotation=rotation,
        variable_frame_rate=timed and is_variable_frame_rate(pts),
        colour=ColourTags.of(stream.codec_context),
        timestamps=timed,
        sample_aspect=pixel_aspect(stream, rotation),
    )


def _audio_info(container: av.container.InputContainer) -> AudioStreamInfo | None:
    s = main_audio_stream(container)
    if s is None:
        return None
    cc = s.codec_context
    declared = declared_duration(s, Fraction(s.time_base)) if s.time_base else None
    if declared is not None:
        duration = declared
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    return AudioStreamInfo(
        index=s.index,
        codec=cc.name,
        sample_rate=int(cc.sample_rate or 0),
        channels=int(cc.channels or 0),
        duration=duration,
    )


def probe_media(path: str | Path, *, require_video: bool = False) -> MediaInfo:
    """Describe a media file. Raises :class:`dubber.errors.InputError` subclasses naming the file."""
    p = Path(path)
    with open_input(p) as container:
        has_video = bool(container.streams.video)
        if require_video and not has_video:
            raise NoVideoStreamError(p, "no video stream (an audio-only or data file?)")
        audio = _audio_info(container)
        video = _video_info(p, container) if has_video else None
        fmt = container.format.name
        duration = container.duration / av.time_base if container.duration else (video.duration if video else 0.0)
        if video is not None and not video.timestamps:  # the container's duration comes from those timestamps
            duration = max(duration, video.duration)
    return MediaInfo(path=p, format_name=fmt, duration=float(duration), video=video, audio=audio)
