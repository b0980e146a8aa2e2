"""Stream frames with their timestamps from any video PyAV decodes, one frame in memory at a time: RGB, or the
decoded planes where the dub needs RGB only in the face's region (``dubber.media.yuv_image``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubber.errors import MediaDecodeError
from dubber.log import get_logger
from dubber.media.container import open_input
from dubber.media.probe import MediaInfo, VideoStreamInfo, probe_media
from dubber.media.yuv_image import YuvImage

log = get_logger("media")


@dataclass
class Frame:
    """One decoded frame, upright (rotation metadata applied): C-contiguous RGB uint8 (H, W, 3), or its planes
    (``VideoReader.frames``)."""

    index: int  # position in the yielded sequence
    time: float  # presentation time in seconds, from the stream start (0 for the first frame)
    image: np.ndarray | YuvImage
    source_index: int  # index of the decoded frame it came from (differs when resampled to a constant rate)
    planes: YuvImage | None = None  # with ``pixels="both"``: the decoded planes beside the RGB ``image``


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return image
    # np.rot90 turns counter-clockwise, the same sense as the display matrix angle.
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))


class VideoReader:
    """Iterate a video's frames as :class:`Frame` objects without ever holding the whole video.

    ``constant_rate`` re-times a variable-frame-rate source onto a constant grid at ``info.fps`` (duplicating or
    dropping frames by nearest timestamp, like FFmpeg's fps filter), so frame ``i`` is at ``i / fps`` seconds.
    ``None`` (default) does that only when the source is detected as variable frame rate.
    """

    def __init__(
        self, path: str | Path, *, constant_rate: bool | None = None, threads: int = 0, info: MediaInfo | None = None
    ) -> None:
        self.path = Path(path)
        self.media = info or probe_media(self.path, require_video=True)
        assert self.media.video is not None  # probe_media(require_video=True) guarantees it
        self.info: VideoStreamInfo = self.media.video
        self.threads = threads
        self.constant_rate = self.info.variable_frame_rate if constant_rate is None else constant_rate
        if self.info.variable_frame_rate:
            log.info("%s: variable frame rate; re-timed to %.3f fps", self.path.name, float(self.info.fps))
        if not self.info.timestamps:
            log.warning(
                "%s: its frames carry no usable timestamps (a raw stream, or a broken muxer); read at %.3f fps",
                self.path.name,
                float(self.info.fps),
            )

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    @property
    def frame_count(self) -> int:
        """Frames this reader yields: the decoded count, or the constant-rate grid's when re-timing."""
        if self.constant_rate:
            return max(1, round(self.info.duration * self.info.fps))
        return self.info.frame_count

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the yielded, upright frames."""
        return self.info.width, self.info.height

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, pixels: str = "rgb") -> Iterator[Frame]:
        """The frames with ``image`` in RGB (``pixels="rgb"``); as ``YuvImage`` wherever the video is 8-bit 4:2:0 of
        even size, RGB where it is not (``"planes"``); or in RGB with the planes beside it in ``Frame.planes``
        (``"both"``: for a frame kept to be written again)."""
        if pixels not in ("rgb", "planes", "both"):
            raise ValueError(f"pixels must be rgb, planes or both, not {pixels!r}")
        frames = self._decoded(pixels)
        return self._constant_rate(frames) if self.constant_rate else frames

    def _decoded(self, pixels: str) -> Iterator[Frame]:
        start = self.info.start_time
        rotation = self.info.rotation
        timed = self.info.timestamps
        with open_input(self.path) as container:
            stream = container.streams[self.info.index]  # the stream the probe described (main_video_stream)
            stream.thread_type = "AUTO"  # frame + slice threads: several times faster for H.264 on many cores
            stream.codec_context.thread_count = self.threads
            index = 0
            try:
                for frame in container.decode(stream):
                    t = float(frame.time) - start if timed and frame.time is not None else index / float(self.info.fps)
                    planes = YuvImage.from_frame(frame, rotation) if pixels != "rgb" else None
                    if pixels == "planes" and planes is not None:
                        image, planes = planes, None
                    else:
                        image = _upright(frame.to_ndarray(format="rgb24"), rotation)
                    yield Frame(index=index, time=max(0.0, t), image=image, source_index=index, planes=planes)
                    index += 1
            except av.error.FFmpegError as exc:
                raise MediaDecodeError(self.path, f"corrupt video data at frame {index} ({exc.strerror})") from None
        if index == 0:
            raise MediaDecodeError(self.path, "no video frame could be decoded")

    def _constant_rate(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        step = 1.0 / float(self.info.fps)
        total = self.frame_count
        slot = 0
        prev: Frame | None = None
        for frame in frames:
            if prev is not None:
                boundary = 0.5 * (prev.time + frame.time)  # slots before the midpoint are nearer to prev
                while slot < total and slot * step < boundary:
                    yield Frame(slot, slot * step, prev.image, prev.source_index, prev.planes)
                    slot += 1
            prev = frame
        while prev is not None and slot < total:
            yield Frame(slot, slot * step, prev.image, prev.source_index, prev.planes)
            slot += 1
