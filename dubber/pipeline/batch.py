"""Batch jobs: which (video, audio, output) triples a manifest or a pair of folders describes, and running them
with the models loaded once, a bad item reported and skipped."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dubber.errors import DubberError, InputError, OutputError
from dubber.log import get_logger
from dubber.media.dub_inputs import check_dub_files, default_output
from dubber.media.encode_options import OUTPUT_SUFFIXES
from dubber.media.stream_tags import language_code
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.dubbing import DubbingPipeline
from dubber.pipeline.timeline import parse_time

log = get_logger("batch")

VIDEO_SUFFIXES = {
    *(".mp4", ".mov", ".mkv", ".m4v", ".avi", ".webm", ".flv", ".wmv", ".3gp", ".mpg", ".mpeg", ".gif"),
    *(".ts", ".mts", ".m2ts", ".h264", ".264", ".hevc", ".h265", ".265"),  # broadcast and camera streams
    *(".png", ".jpg", ".jpeg", ".bmp", ".webp"),  # a still image becomes a talking video
}
SUBTITLE_SUFFIXES = {".srt", ".ass", ".ssa", ".vtt"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".wma", ".mp4", ".mov", ".mkv", ".webm"}


@dataclass(frozen=True)
class BatchItem:
    video: Path
    audio: Path | None  # None: no audio could be paired (reported as a failed item)
    output: Path
    problem: str = ""
    start: float = 0.0  # seconds into the video where the dub starts (the manifest's ``start`` column)
    person: int | None = None  # the only person dubbed (the manifest's ``person`` column; None: the batch's own)
    speech: Path | None = None  # the voice the mouth follows where ``audio`` is a mix (the ``speech`` column)
    subtitles: Path | None = None  # subtitles of the new speech, added as a track (the ``subtitles`` column)
    language: str | None = None  # the new speech's language (the ``language`` column; None: the batch's own)


@dataclass
class ItemResult:
    item: BatchItem
    status: str  # "ok", "skipped" or "failed"
    error: str = ""
    result: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {
            "video": str(self.item.video),
            "audio": str(self.item.audio) if self.item.audio else None,
            "output": str(self.item.output),
            "status": self.status,
        }
        if self.item.start:
            d["start"] = self.item.start
        if self.item.person is not None:
            d["person"] = self.item.person
        if self.item.speech is not None:
            d["speech"] = str(self.item.speech)
        if self.item.subtitles is not None:
            d["subtitles"] = str(self.item.subtitles)
        if self.item.language is not None:
            d["language"] = self.item.language
        if self.error:
            d["error"] = self.error
        if self.result:
            d["result"] = self.result
        return d


def _output_for(video: Path, relative: Path, out_dir: Path | None, suffix: str) -> Path:
    if out_dir is None:
        return default_output(video, suffix)
    return out_dir / relative.parent / f"{relative.stem}{suffix}"


def output_suffix(container: str) -> str:
    """The suffix of the outputs a batch names itself, from ``--format`` (mp4, mov, mkv or webm)."""
    suffix = "." + container.lower().lstrip(".")
    if suffix not in OUTPUT_SUFFIXES:
        known = ", ".join(s.lstrip(".") for s in OUTPUT_SUFFIXES)
        raise InputError(None, f"--format {container!r} is not one of {known}")
    return suffix


def _read_rows(manifest: Path) -> list[dict]:
    try:
        text = manifest.read_text()
    except OSError as exc:
        raise InputError(manifest, f"cannot read the manifest ({exc.strerror or exc})") from None
    if manifest.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise InputError(manifest, f"line {n} is not JSON") from None
        return rows
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not {"video", "audio"} <= {f.strip() for f in reader.fieldnames}:
        raise InputError(
            manifest,
            "a batch manifest needs 'video' and 'audio' columns (and optionally 'output', 'start', 'person', "
            "'speech', 'subtitles' and 'language')",
        )
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _start_of(manifest: Path, n: int, value) -> float:
    """Row ``n``'s ``start`` (seconds or [HH:]MM:SS[.ms]; empty: 0)."""
    if value is None or str(value).strip() == "":
        return 0.0
    try:
        return parse_time(str(value))
    except ValueError:
        raise InputError(manifest, f"row {n}: start {value!r} is not seconds or [HH:]MM:SS[.ms]") from None


def _person_of(manifest: Path, n: int, value) -> int | None:
    """Row ``n``'s ``person`` (0, 1, ...; empty: the batch's own ``--person``)."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise InputError(manifest, f"row {n}: person {value!r} is not 0, 1, 2, ... (0: the person seen longest)")
    return int(text)


def _language_of(manifest: Path, n: int, value) -> str | None:
    """Row ``n``'s ``language`` (an ISO 639-2 code; empty: the batch's own ``--language``)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return language_code(str(value))
    except ValueError as exc:
        raise InputError(manifest, f"row {n}: {exc}") from None


def items_from_manifest(manifest: Path, out_dir: Path | None, suffix: str = ".mp4") -> list[BatchItem]:
    """Rows ``video,audio[,output][,start][,person][,speech][,subtitles][,language]`` (CSV with a header, or JSON
    lines); relative paths are relative to the manifest's folder, a relative ``output`` to ``out_dir`` when given;
    rows without one get a ``suffix`` file; ``start``: where in the video its dub starts (``--start``); ``person``:
    the only person dubbed (``--person``); ``speech``: the voice the mouth follows where ``audio`` is a mix
    (``--speech``); ``subtitles``: a subtitle file of the new speech (``--subtitles``); ``language``: its language
    (``--language``)."""
    base = manifest.parent
    items = []
    for n, row in enumerate(_read_rows(manifest), 1):
        if not isinstance(row, dict) or not row.get("video") or not row.get("audio"):
            raise InputError(manifest, f"row {n} needs 'video' and 'audio'")
        video, audio = base / row["video"], base / row["audio"]
        if row.get("output"):
            out = Path(row["output"])
            output = out if out.is_absolute() else (out_dir or base) / out
        else:
            output = _output_for(video, Path(row["video"]), out_dir, suffix)
        start, person = _start_of(manifest, n, row.get("start")), _person_of(manifest, n, row.get("person"))
        speech = base / row["speech"] if row.get("speech") else None
        subtitles = base / row["subtitles"] if row.get("subtitles") else None
        language = _language_of(manifest, n, row.get("language"))
        extra = {"speech": speech, "subtitles": subtitles, "language": language}
        items.append(BatchItem(video, audio, output, start=start, person=person, **extra))
    if not items:
        raise InputError(manifest, "the manifest lists no jobs")
    return items


def _media_files(folder: Path, suffixes: set[str]) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


class _FolderPairs:
    """The media files under a folder, found by a video's relative stem (or, failing that, its stem anywhere)."""

    def __init__(self, folder: Path, what: str, suffixes: set[str] = AUDIO_SUFFIXES) -> None:
        if not folder.is_dir():
            raise InputError(folder, "is not a folder")
        self.folder, self.what = folder, what
        self.by_rel: dict[Path, Path] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for a in _media_files(folder, suffixes):
            self.by_rel.setdefault(a.relative_to(folder).with_suffix(""), a)
            self.by_stem.setdefault(a.stem, []).append(a)

    def find(self, video: Path, rel: Path) -> tuple[Path | None, str]:
        """The file paired with ``video`` (``rel`` under its folder), or None and why."""
        match = self.by_rel.get(rel.with_suffix(""))
        if match is not None:
            return match, ""
        found = self.by_stem.get(video.stem, [])
        if len(found) == 1:
            return found[0], ""
        if found:
            return None, f"{len(found)} {self.what} files named {video.stem}.* under {self.folder}; which one is meant?"
        return None, f"no {self.what} named {video.stem}.* under {self.folder}"


def items_from_folders(
    videos: Path,
    audio: Path,
    out_dir: Path | None,
    suffix: str = ".mp4",
    speech: Path | None = None,
    subtitles: Path | None = None,
) -> list[BatchItem]:
    """Every video under ``videos`` paired with the audio of the same relative stem under ``audio`` (or, failing
    that, the one audio file anywhere under it with the same stem), and so with a speech stem under ``speech``
    when given (an item without one fails: its mouth would follow the mix) and a subtitle file under
    ``subtitles`` (an item without one has none added; one with several fails)."""
    if not videos.is_dir():
        raise InputError(videos, "is not a folder")
    audios = _FolderPairs(audio, "audio")
    stems = None if speech is None else _FolderPairs(speech, "speech")
    texts = None if subtitles is None else _FolderPairs(subtitles, "subtitle", SUBTITLE_SUFFIXES)
    items = []
    for v in _media_files(videos, VIDEO_SUFFIXES):
        rel = v.relative_to(videos)
        match, problem = audios.find(v, rel)
        voice = text = None
        if stems is not None and match is not None:
            voice, problem = stems.find(v, rel)
            match = match if voice is not None else None
        if texts is not None and match is not None:
            text, why = texts.find(v, rel)
            if text is None and v.stem in texts.by_stem:  # several: which one is meant
                match, problem = None, why
        output = _output_for(v, rel, out_dir, suffix)
        items.append(BatchItem(v, match, output, problem, speech=voice, subtitles=text))
    if not items:
        raise InputError(videos, "holds no video or image files")
    return items


def _make_folder(output: Path) -> None:
    """The output's folder, made where missing; a file standing where a folder must be is the item's error."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in [output.parent, *output.parent.parents] if p.exists() and not p.is_dir())
        raise OutputError(output, f"cannot make its folder: {blocker} is a file") from None
    except OSError as exc:
        raise OutputError(output, f"cannot make its folder ({exc.strerror or exc})") from None


class LastAnalysis:
    """The face track of the last video a batch dubbed, kept while the items that follow dub the same file (one
    video into several languages): tracking it again would give the same track. The file is known by its resolved
    path, size and modification time; one track is kept at a time."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._track: VideoTrack | None = None
        self.seconds = 0.0  # the last call's tracking time: 0 when it reused the track

    def forget(self) -> None:
        """Let the kept track go (its reference pool holds frames): the items that follow dub other videos."""
        self._key = self._track = None

    def track(self, pipe: DubbingPipeline, video: Path, progress=None) -> VideoTrack:
        try:
            st = video.stat()
            key = (str(video.resolve()), st.st_size, st.st_mtime_ns)
        except OSError:
            key = None  # the dub names the problem
        self.seconds = 0.0
        if key is None or key != self._key:
            self._key = self._track = None  # the old track is freed before the new one is made
            t0 = time.perf_counter()
            track = pipe.analyse(video, progress=progress)
            self.seconds = time.perf_counter() - t0
            self._key, self._track = key, track
        return self._track


def shares_video(items: list[BatchItem], i: int) -> bool:
    """Whether item ``i`` dubs the same video as the item before or after it: only then is its track worth keeping
    (a dub that tracks its video itself spools the frames a ping-pong shows again in the same pass)."""
    here = items[i].video.resolve()
    return any(0 <= j < len(items) and items[j].video.resolve() == here for j in (i - 1, i + 1))


def run_item(
    pipe: DubbingPipeline,
    item: BatchItem,
    *,
    skip_existing: bool = False,
    overwrite: bool = False,
    progress=None,
    analyses: LastAnalysis | None = None,
) -> ItemResult:
    """Dub one item; every failure becomes ``status="failed"`` with a one-line error (Ctrl-C still stops).
    ``analyses``: the last video's track, reused when this item dubs the same video."""
    if item.audio is None:
        outcome = ItemResult(item, "failed", f"{item.video}: {item.problem}")
    elif skip_existing and item.output.exists():
        return ItemResult(item, "skipped")
    else:
        try:
            _make_folder(item.output)
            analysis = None
            if analyses is not None:
                files = {"speech": item.speech, "subtitles": item.subtitles}
                check_dub_files(item.video, item.audio, item.output, overwrite=overwrite, **files)
                analysis = analyses.track(pipe, item.video, progress)
            result = pipe(
                item.video,
                item.audio,
                item.output,
                speech=item.speech,
                subtitles=item.subtitles,
                overwrite=overwrite,
                progress=progress,
                analysis=analysis,
                start=item.start or None,  # None: the batch's own options
                person=item.person,
                language=item.language,
            )
            if analysis is not None and analyses.seconds:  # the tracking counts where it was done: its video's first
                for stage, seconds in {**analysis.seconds, "total": analyses.seconds}.items():
                    result.timings[stage] = result.timings.get(stage, 0.0) + seconds
            done = result.to_dict()
            if analysis is not None:
                done["track_reused"] = not analyses.seconds
            return ItemResult(item, "ok", result=done)
        except DubberError as exc:
            outcome = ItemResult(item, "failed", str(exc))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - one broken item must not end the batch
            log.debug("unexpected error on %s", item.video, exc_info=True)
            outcome = ItemResult(item, "failed", f"{item.video}: unexpected {type(exc).__name__}: {exc}")
    log.debug("%s", outcome.error)  # the caller reports it (``dub batch`` with the item's index)
    return outcome
