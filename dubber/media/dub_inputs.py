"""The checks a dub makes on its files before anything heavy runs: the output's name and folder, the video, the
audio. The CLI (and ``dub batch`` before it tracks a video) makes the cheap ones before the heavy work, so a bad file
is named in a second, not after the weights have loaded; the pipeline makes them all for callers of the library."""

from __future__ import annotations

from pathlib import Path

from dubber.errors import NoAudioStreamError, NoVideoStreamError, OutputError
from dubber.media.atomic import check_output_path
from dubber.media.container import open_input
from dubber.media.encode_options import container_format_for
from dubber.media.probe import MediaInfo, probe_media
from dubber.media.subtitle_feed import check_subtitle_file


def default_output(video: str | Path, suffix: str = ".mp4") -> Path:
    """``<stem>.dubbed.mp4`` (or another ``suffix``) beside the input."""
    p = Path(video)
    return p.with_name(f"{p.stem}.dubbed{suffix}")


def check_dub_files(
    video: str | Path,
    audio: str | Path,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    speech: str | Path | None = None,
    subtitles: str | Path | None = None,
) -> Path:
    """The output path (``default_output`` when None), once it can be written there and the inputs open: a video
    (or still image) with a picture stream, an audio (and a ``speech`` stem, when given) with a sound stream. Only
    the containers' headers are read (probing reads through every packet of the video, which the dub does once,
    later); ``subtitles``, when given, must hold subtitles the output can take. Raises
    :class:`dubber.errors.InputError` subclasses naming the file."""
    inputs = [(Path(video), "video"), (Path(audio), "audio")]
    if speech is not None:
        inputs.append((Path(speech), "audio"))
    video = inputs[0][0]
    output = default_output(video) if output is None else Path(output)
    if subtitles is not None:
        inputs.append((Path(subtitles), "subtitles"))
    if output.exists() and output.resolve() in {path.resolve() for path, _ in inputs}:
        raise OutputError(output, "is one of the inputs; choose another output name")
    check_output_path(output, overwrite=overwrite)  # a folder is named as one, before its suffix
    container_format_for(output)
    for path, kind in inputs:
        if kind == "subtitles":
            continue
        with open_input(path) as container:
            if kind == "video" and not container.streams.video:
                raise NoVideoStreamError(path, "no video stream (an audio-only or data file?)")
            if kind == "audio" and not container.streams.audio:
                raise NoAudioStreamError(path, "no audio stream")
    if subtitles is not None:
        check_subtitle_file(Path(subtitles), output)
    return output


def check_dub_inputs(
    video: str | Path,
    audio: str | Path,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    speech: str | Path | None = None,
    subtitles: str | Path | None = None,
) -> tuple[Path, MediaInfo]:
    """``check_dub_files``, and the video's description (``probe_media``: a truncated or empty video is named)."""
    output = check_dub_files(video, audio, output, overwrite=overwrite, speech=speech, subtitles=subtitles)
    return output, probe_media(video, require_video=True)
