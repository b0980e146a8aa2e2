"""H.264/yuv420p writer on PyAV (VP9 in WebM): source fps and time base kept, audio and subtitles muxed, the
source's tags and chapters carried, atomic on the destination."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from dubber.errors import InputError, MediaWriteError
from dubber.log import get_logger
from dubber.media.atomic import check_output_path, temporary_path_for
from dubber.media.audio import AudioClip
from dubber.media.audio_feed import (
    AudioFromFile,
    AudioSource,
    SplicedAudio,
    StreamFeed,
    label_track,
    make_audio_feed,
)
from dubber.media.encode_options import (
    AudioEncodeOptions,
    VideoEncodeOptions,
    audio_options_for,
    container_format_for,
    even_size,
    host_cpu_flags,
    muxer_options,
    video_encoder,
)
from dubber.media.probe import ColourTags
from dubber.media.stream_tags import Attachment
from dubber.media.subtitle_feed import SubtitleFeed, SubtitleSource
from dubber.media.yuv_image import YuvImage

log = get_logger("media")

# Audio is muxed this far ahead of the video so the interleaver never waits on it.
_AUDIO_LEAD_S = 0.5


def _keep_time_base(time_base: Fraction | None, fps: Fraction) -> Fraction:
    """The source time base when every frame lands on a whole tick of it, else 1/fps's own."""
    if time_base is not None and (1 / (fps * time_base)).denominator == 1:
        return time_base
    return Fraction(fps.denominator, fps.numerator)


class VideoWriter:
    """Write RGB frames to ``path``; nothing appears at ``path`` unless :meth:`close` succeeds.

    Use as a context manager: an exception inside the block deletes the temporary file and leaves any existing
    destination untouched. Odd sizes are padded by one pixel (edge-replicated) because yuv420p needs even ones.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: Fraction,
        time_base: Fraction | None = None,
        options: VideoEncodeOptions | None = None,
        audio: AudioSource | Sequence[AudioSource] | None = None,
        audio_options: AudioEncodeOptions | None = None,
        overwrite: bool = False,
        colour: ColourTags | None = None,
        sample_aspect: Fraction | None = None,
        subtitles: Sequence[SubtitleSource] = (),
        tags: Mapping[str, str] | None = None,
        video_tags: Mapping[str, str] | None = None,
        chapters: Sequence[dict] = (),
        attachments: Sequence[Attachment] = (),
    ) -> None:
        """``colour``: the source's colour tags, given to the output when its frames come as the source's planes
        (``YuvImage``), whose values mean what they meant in the source. ``sample_aspect``: the source's pixel
        aspect (anamorphic video), so that the output is displayed as wide as the source. ``subtitles``: subtitle
        tracks after the audio ones. ``tags``, ``video_tags``: the container's and the video stream's (title,
        language...); ``chapters``: as PyAV's ``set_chapters`` takes them; ``attachments`` (fonts): Matroska's alone
        holds them, elsewhere they are left out."""
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = Fraction(fps)
        self.options = options or VideoEncodeOptions()
        self.format = container_format_for(self.path)
        check_output_path(self.path, overwrite=overwrite)
        video_encoder(self.format, self.options)  # validate before any file exists
        self.time_base = _keep_time_base(time_base, self.fps)
        # Several audio sources become several tracks, the first one the default.
        one = isinstance(audio, (AudioClip, AudioFromFile, SplicedAudio))
        self.audio = [] if audio is None else [audio] if one else list(audio)
        self.audio_options = audio_options_for(self.format, audio_options or AudioEncodeOptions())
        self.overwrite = overwrite
        self.colour = colour
        self.sample_aspect = sample_aspect
        self.subtitles = list(subtitles)
        self.tags, self.video_tags = dict(tags or {}), dict(video_tags or {})
        self.chapters = list(chapters)
        self.attachments = list(attachments) if self.format == "matroska" else []
        self.left_out: list[SubtitleSource] = []  # optional subtitle tracks that could not be carried
        self._tagged: ColourTags | None = None  # the tags the stream was given, with its first frame
        self.frames_written = 0
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._feeds: list[StreamFeed] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def open(self) -> VideoWriter:
        self._tmp = temporary_path_for(self.path)
        try:
            self._container = av.open(str(self._tmp), mode="w", format=self.format, options=muxer_options(self.format))
            out_w, out_h = even_size(self.width, self.height)
            if (out_w, out_h) != (self.width, self.height):
                log.info(
                    "%s: %dx%d is written as %dx%d (yuv420p needs even sizes; the last column or row is repeated)",
                    self.path,
                    self.width,
                    self.height,
                    out_w,
                    out_h,
                )
            codec, codec_options = video_encoder(self.format, self.options, host_cpu_flags())
            stream = self._container.add_stream(codec, rate=self.fps, options=codec_options)
            stream.width, stream.height = out_w, out_h
            stream.pix_fmt = self.options.pix_fmt
            stream.time_base = self.time_base
            stream.codec_context.time_base = Fraction(self.fps.denominator, self.fps.numerator)
            stream.codec_context.thread_count = self.options.threads
            if self.sample_aspect is not None and self.sample_aspect != 1:
                stream.codec_context.sample_aspect_ratio = self.sample_aspect
            stream.metadata.update(self.video_tags)
            self._stream = stream
            for source in self.audio:
                feed = make_audio_feed(source, self.format, self.audio_options)
                if feed is not None:
                    self._feeds.append(feed)
                    feed.open(self._container, self.format)
                    label_track(feed.stream, source)
            for subtitle in self.subtitles:
                try:
                    feed = SubtitleFeed(subtitle, self.format)
                except InputError as exc:
                    if not subtitle.optional:
                        raise
                    log.warning("%s; that subtitle track is left out", exc)
                    self.left_out.append(subtitle)
                    continue
                self._feeds.append(feed)
                feed.open(self._container, self.format)
            for attachment in self.attachments:
                self._container.add_attachment(attachment.name, attachment.mimetype, attachment.data)
            self._container.metadata.update(self.tags)
            if self.chapters:
                self._container.set_chapters(self.chapters)
        except BaseException:
            self.abort()
            raise
        return self

    def __enter__(self) -> VideoWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- writing -----------------------------------------------------------------------------------------------
    def write(self, image: np.ndarray | YuvImage) -> None:
        """Append one frame of the size given at construction: RGB uint8, or decoded planes (``YuvImage``), which
        go to the encoder as they are."""
        if self._container is None:
            raise RuntimeError("VideoWriter is not open; use it as a context manager")
        if isinstance(image, YuvImage):
            if image.shape != (self.height, self.width, 3):
                raise ValueError(f"planes of a {image.width}x{image.height} frame, expected {self.width}x{self.height}")
            if self.frames_written == 0:
                self._tag(image)
            frame = image.to_frame()
        else:
            frame = self._rgb_frame(image)
            if self._tagged is not None:  # converted into the stream's matrix and range, as the planes are in
                frame.colorspace, frame.color_range = self._tagged.colorspace, self._tagged.range
        frame.pts = self.frames_written
        frame.time_base = self._stream.codec_context.time_base
        try:
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1
            for feed in self._feeds:
                feed.write_until(self.frames_written / float(self.fps) + _AUDIO_LEAD_S)
        except av.error.FFmpegError as exc:
            raise MediaWriteError(f"{self.path}: encoding failed ({exc.strerror or exc})") from None

    def _tag(self, image: YuvImage) -> None:
        """Tag the stream (before its encoder opens) with the colour matrix and range of the planes it is given, and
        the source's primaries and transfer."""
        source = self.colour or ColourTags()
        tags = ColourTags(image.colorspace, source.primaries, source.transfer, image.color_range)
        if tags == ColourTags():
            return
        context = self._stream.codec_context
        context.colorspace, context.color_primaries = tags.colorspace, tags.primaries
        context.color_trc, context.color_range = tags.transfer, tags.range
        self._tagged = tags

    def _rgb_frame(self, image: np.ndarray) -> av.VideoFrame:
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {image.shape} {image.dtype}, expected ({self.height}, {self.width}, 3) uint8"
            )
        out_w, out_h = even_size(self.width, self.height)
        if (out_w, out_h) != (self.width, self.height):
            image = np.pad(image, ((0, out_h - self.height), (0, out_w - self.width), (0, 0)), mode="edge")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")

    def close(self) -> Path:
        """Flush the encoders, finish the audio, and move the file onto its destination."""
        if self._container is None or self._tmp is None:
            raise RuntimeError("VideoWriter is not open")
        try:
            self._container.mux(self._stream.encode(None))
            for feed in self._feeds:
                feed.finish()
                feed.close()
            self._feeds = []
            self._container.close()
            self._container = None
            check_output_path(self.path, overwrite=self.overwrite)  # it may have appeared meanwhile
            self._tmp.replace(self.path)
        except av.error.FFmpegError as exc:
            self.abort()
            raise MediaWriteError(f"{self.path}: finishing the file failed ({exc.strerror or exc})") from None
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial output. Safe to call more than once."""
        for feed in self._feeds:
            feed.close()
        self._feeds = []
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a half-written file may fail; it is deleted anyway
                pass
            self._container = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
