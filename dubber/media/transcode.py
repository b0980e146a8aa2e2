"""A plain decode + re-encode with the writer the dub uses: the reference for untouched pixels and for speed. The
frames go from the decoder to the encoder as decoded planes wherever they can (8-bit 4:2:0 of even size), as the
dub's frames do, so neither pays for a conversion to RGB and back that a plain re-encode does not need."""

from __future__ import annotations

from pathlib import Path

from dubber.media.audio_feed import AudioFromFile, own_sound
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.probe import probe_media
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter


def reencode(
    video: str | Path,
    output: str | Path,
    *,
    options: VideoEncodeOptions | None = None,
    audio: str | Path | None = None,
    max_frames: int | None = None,
    overwrite: bool = False,
) -> int:
    """Decode ``video`` and encode it again (same fps and time base); the audio of ``audio`` (default: the video's
    own, when it has one). Returns the frames written."""
    media = probe_media(video, require_video=True)
    reader = VideoReader(video, info=media)
    sound = None
    if audio is not None:
        sound = AudioFromFile(Path(audio))
    elif media.audio is not None:
        sound = own_sound(media.path)  # where the video presents it beside its frames
    w, h = reader.size
    with VideoWriter(
        output,
        width=w,
        height=h,
        fps=reader.fps,
        time_base=reader.info.time_base,
        options=options,
        audio=sound,
        overwrite=overwrite,
        colour=reader.info.colour,
        sample_aspect=reader.info.sample_aspect,
    ) as writer:
        for frame in reader.frames("planes"):
            if max_frames is not None and frame.index >= max_frames:
                break
            writer.write(frame.image)
        return writer.frames_written
