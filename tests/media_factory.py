"""Media generated at test time with raw PyAV, independent of dubber's own writer."""

from __future__ import annotations

from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VIDEO_CODECS = {"mp4": "libx264", "mkv": "libx264", "mov": "libx264", "webm": "libvpx-vp9", "h264": "libx264"}
AUDIO_IN_VIDEO = {"mp4": "aac", "mkv": "aac", "mov": "aac", "webm": "libopus"}
AUDIO_FILES = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "flac": ("flac", "flac"),
    "m4a": ("ipod", "aac"),
}


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """A smooth, moving, frame-specific picture with four distinctly coloured quadrants (to check rotation)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 0.15
    base = 0.5 + 0.25 * np.sin(x / max(width, 1) * 6.0 + phase) * np.cos(y / max(height, 1) * 4.0 - phase)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0], img[..., 1], img[..., 2] = base, 1.0 - base, 0.5 * base + 0.25
    h2, w2 = height // 2, width // 2
    img[:h2, :w2] *= (1.0, 0.3, 0.3)  # top-left reddish
    img[:h2, w2:] *= (0.3, 1.0, 0.3)  # top-right greenish
    img[h2:, :w2] *= (0.3, 0.3, 1.0)  # bottom-left bluish
    return np.ascontiguousarray((img * 255).clip(0, 255).astype(np.uint8))


def tone(seconds: float, rate: int, channels: int, freqs: tuple[float, ...] = (440.0, 660.0)) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * freqs[c % len(freqs)] * t) for c in range(channels)]).astype(np.float32)


def _add_audio_stream(container, codec: str, rate: int, channels: int, layout: str | None = None):
    if layout is None and channels > 2:  # written as stereo, the samples would run 3 times as long for 5.1
        raise ValueError(f"{channels} channels need a layout (e.g. '5.1')")
    stream = container.add_stream(codec, rate=rate)
    stream.layout = layout or ("mono" if channels == 1 else "stereo")
    return stream


def _encode_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    resampler = av.AudioResampler(format=fmt, layout=stream.layout.name, rate=rate)
    step = 1024
    for start in range(0, samples.shape[1], step):
        chunk = np.ascontiguousarray(samples[:, start : start + step].T).reshape(1, -1)  # packed: any channel count
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for f in resampler.resample(frame):
            container.mux(stream.encode(f))
    container.mux(stream.encode(None))


def make_video(
    path: Path,
    *,
    fps: Fraction | int = 25,
    frames: int = 25,
    width: int = 96,
    height: int = 64,
    rotation: int | None = None,
    audio_rate: int | None = None,
    audio_channels: int = 1,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
    frame_fn=pattern_frame,
    colour: tuple[int, int] | None = None,
    sample_aspect: Fraction | None = None,
) -> Path:
    """Write a test video. ``pts`` (with ``time_base``) gives explicit, possibly irregular, timestamps (VFR);
    ``colour`` (FFmpeg's colour space and range, e.g. (1, 1): BT.709 limited): frames converted with that matrix and
    the stream tagged with it (primaries and transfer the same number); ``sample_aspect``: non-square pixels."""
    ext = path.suffix.lstrip(".")
    fmt = {"mkv": "matroska"}.get(ext, ext)
    options = {"movflags": "faststart"} if faststart else {}
    fps = Fraction(fps)
    with av.open(str(path), "w", format=fmt, options=options) as out:
        stream = out.add_stream(VIDEO_CODECS[ext], rate=fps)
        if pix_fmt == "yuv420p":
            width, height = width + (width & 1), height + (height & 1)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt  # yuv444p allows odd sizes
        if VIDEO_CODECS[ext] == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        if time_base is not None:
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        if colour is not None:
            cc = stream.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = colour[0], colour[0], colour[0], colour[1]
        tb = time_base or Fraction(fps.denominator, fps.numerator)
        stream.codec_context.time_base = tb
        audio_stream = None
        if audio_rate:
            audio_rate = 48000 if ext == "webm" else audio_rate  # Opus only runs at 48 kHz
            audio_stream = _add_audio_stream(out, AUDIO_IN_VIDEO[ext], audio_rate, audio_channels)
        for i in range(frames):
            img = frame_fn(i, stream.width, stream.height)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if colour is not None:  # the reformat into the stream's format uses the frame's matrix and range
                frame.colorspace, frame.color_range = colour
                frame = frame.reformat(format=pix_fmt)
            frame.pts = pts[i] if pts is not None else round(i / (fps * tb))
            frame.time_base = tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_stream is not None:
            samples = tone(frames / float(fps), audio_rate, audio_channels)
            _encode_audio(out, audio_stream, samples, audio_rate)
    return path


def make_audio(
    path: Path,
    *,
    rate: int = 16000,
    channels: int = 1,
    seconds: float = 1.0,
    freqs: tuple[float, ...] = (440.0, 660.0),
    layout: str | None = None,
    samples: np.ndarray | None = None,
) -> Path:
    """Tones (one frequency per channel), or the given (channels, n) ``samples`` in channel ``layout`` (default mono
    or stereo by ``channels``)."""
    fmt, codec = AUDIO_FILES[path.suffix.lstrip(".")]
    if samples is None:
        samples = tone(seconds, rate, channels, freqs)
    with av.open(str(path), "w", format=fmt) as out:
        stream = _add_audio_stream(out, codec, rate, samples.shape[0], layout)
        _encode_audio(out, stream, samples, rate)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def face_frame(index: int, width: int, height: int) -> np.ndarray:
    """The public-domain astronaut portrait (scikit-image), gently swaying, at the requested size."""
    import cv2
    from skimage import data

    portrait = cv2.resize(data.astronaut()[:300, 90:390], (width, height), interpolation=cv2.INTER_AREA)
    angle = 2.0 * np.sin(index / 6.0)
    m = cv2.getRotationMatrix2D((width / 2, height / 2.5), angle, 1.0 + 0.004 * index)
    return cv2.warpAffine(portrait, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def make_face_video(path: Path, *, frames: int = 20, size: int = 192, no_face: range | None = None, **kw) -> Path:
    """A talking-head stand-in MediaPipe tracks; frames in ``no_face`` show a face-less pattern instead."""

    def frame_fn(i: int, w: int, h: int) -> np.ndarray:
        if no_face is not None and i in no_face:
            return pattern_frame(i, w, h)
        return face_frame(i, w, h)

    return make_video(path, frames=frames, width=size, height=size, frame_fn=frame_fn, **kw)


def make_subtitles(path: Path, cues: list[tuple[float, float, str]]) -> Path:
    """A SubRip file of ``cues`` (start s, end s, text)."""

    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = [f"{k}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for k, (a, b, text) in enumerate(cues, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def with_extras(
    source: Path,
    path: Path,
    *,
    subtitles: list[tuple[Path, dict[str, str], int]] = (),
    chapters: list[tuple[float, float, str]] = (),
    tags: dict[str, str] | None = None,
    audio_tags: dict[str, str] | None = None,
    more_audio: list[tuple[Path, dict[str, str], int]] = (),
    attachments: list[tuple[str, str, bytes]] = (),
) -> Path:
    """``source`` remuxed into Matroska with subtitle tracks (each a subtitle file's packets, its tags and
    disposition), chapters (start s, end s, title), container tags, its audio stream's tags, and more audio tracks
    (each the first audio stream of a file, with its tags and disposition) and attached files (name, type, data)."""
    with ExitStack() as files, av.open(str(source)) as src, av.open(str(path), "w", format="matroska") as out:
        streams = {}
        for s in (*src.streams.video, *src.streams.audio):
            streams[s.index] = out.add_stream_from_template(s)
            if s.type == "audio":
                streams[s.index].metadata.update(audio_tags or {})
                streams[s.index].disposition = av.stream.Disposition.default
        added = []  # (an opened file, its stream taken, the output's): more audio first, then subtitles
        for file, stream_tags, disposition, kind in [
            *((*given, "audio") for given in more_audio),
            *((*given, "subtitles") for given in subtitles),
        ]:
            opened = files.enter_context(av.open(str(file)))
            taken = getattr(opened.streams, kind)[0]
            stream = out.add_stream_from_template(taken)
            stream.metadata.update(stream_tags)
            stream.disposition = av.stream.Disposition(disposition)
            added.append((opened, taken, stream))
        for name, mimetype, data in attachments:
            out.add_attachment(name, mimetype, data)
        out.metadata.update(tags or {})
        ms = Fraction(1, 1000)
        marks = [(k + 1, round(a * 1000), round(b * 1000), t) for k, (a, b, t) in enumerate(chapters)]
        out.set_chapters(
            [{"id": k, "start": a, "end": b, "time_base": ms, "metadata": {"title": t}} for k, a, b, t in marks]
        )
        for packet in src.demux([src.streams[i] for i in streams]):
            if packet.size:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
        for opened, taken, stream in added:
            for packet in opened.demux(taken):
                if packet.size:
                    packet.stream = stream
                    out.mux(packet)
    return path


def with_sound_moved(video: Path, sound: Path, path: Path, seconds: float) -> Path:
    """``video``'s picture and ``sound``'s audio (stream copies) in a Matroska file, the sound presented ``seconds``
    later than the picture (< 0: earlier; the picture then starts at ``-seconds``), as an edit or a broadcast
    capture leaves them. A PCM ``sound`` has no encoder priming, so its first sample is presented exactly there."""
    with av.open(str(video)) as pic, av.open(str(sound)) as snd, av.open(str(path), "w", format="matroska") as out:
        sources = [(pic, pic.streams.video[0], max(0.0, -seconds)), (snd, snd.streams.audio[0], max(0.0, seconds))]
        streams = [out.add_stream_from_template(taken) for _, taken, _ in sources]  # all before the first packet
        for (container, taken, later), stream in zip(sources, streams, strict=True):
            moved = round(later / taken.time_base)
            for packet in container.demux(taken):
                if packet.size:
                    packet.pts, packet.dts = packet.pts + moved, packet.dts + moved
                    packet.stream = stream
                    out.mux(packet)
    return path
