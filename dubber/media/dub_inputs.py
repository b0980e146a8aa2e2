"""The checks a dub makes on its files before anything heavy runs: the output's name and folder, the video, the
audio. The CLI makes them before it loads the models, so a bad file is named in a second, not after the weights
have loaded; the pipeline makes them again for callers of the library."""

from __future__ import annotations

from pathlib import Path

from dubber.errors import NoAudioStreamError, OutputError
from dubber.media.atomic import check_output_path
from dubber.media.container import open_input
from dubber.media.encode_options import container_format_for
from dubber.media.probe import MediaInfo, probe_media


def default_output(video: str | Path) -> Path:
    """``<stem>.dubbed.mp4`` beside the input."""
    p = Path(video)
    return p.with_name(f"{p.stem}.dubbed.mp4")


def check_dub_inputs(
    video: str | Path, audio: str | Path, output: str | Path | None = None, *, overwrite: bool = False
) -> tuple[Path, MediaInfo]:
    """The output path (``default_output`` when None) and the video's description, once the output can be
    written there and both inputs are readable: a video (or still image) with a picture, an audio with sound.
    Raises :class:`dubber.errors.InputError` subclasses naming the file."""
    video, audio = Path(video), Path(audio)
    output = default_output(video) if output is None else Path(output)
    if output.exists() and output.resolve() in (video.resolve(), audio.resolve()):
        raise OutputError(output, "is one of the inputs; choose another output name")
    check_output_path(output, overwrite=overwrite)  # a folder is named as one, before its suffix
    container_format_for(output)
    media = probe_media(video, require_video=True)
    with open_input(audio) as container:  # its streams only: probing would read through a long video's packets
        if not container.streams.audio:
            raise NoAudioStreamError(audio, "no audio stream")
    return output, media
