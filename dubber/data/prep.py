"""``dub prep``: prepare many clips into a cache, in parallel, resumable, with a manifest and a summary."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dubber.data.prep_clip import ClipRecord, PrepOptions, is_done, prepare_clip, read_record
from dubber.data.sources import ClipSource
from dubber.errors import OutputError
from dubber.log import get_logger

log = get_logger("data")

MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "prep.json"
MANIFEST_COLUMNS = (
    "clip_id",
    "split",
    "speaker",
    "status",
    "reason",
    "frames",
    "face_frames",
    "usable_frames",
    "fps",
    "seconds",
    "has_audio",
    "source",
)

ProgressFn = Callable[[ClipRecord, int, int], None]  # (record just finished, clips done, clips total)


@dataclass
class PrepSummary:
    cache: str
    clips: int
    prepared_now: int
    already_done: int
    ok: int
    skipped: int
    skipped_reasons: dict[str, int]
    splits: dict[str, dict[str, float]]  # split -> clips, speakers, frames, usable_frames, minutes
    seconds: float
    jobs: int
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# Each worker process keeps one tracker (a MediaPipe graph) for all its clips: building one costs ~0.1 s.
_worker_tracker = None


def _worker_init() -> None:
    global _worker_tracker
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from dubber.face.tracker import FaceTracker

    _worker_tracker = FaceTracker()


def _worker_prepare(source: ClipSource, cache: Path, options: PrepOptions) -> ClipRecord:
    assert _worker_tracker is not None
    return prepare_clip(source, cache, options, _worker_tracker)


def prepare_dataset(
    sources: list[ClipSource],
    cache: str | Path,
    options: PrepOptions | None = None,
    *,
    jobs: int = 1,
    progress: ProgressFn | None = None,
) -> PrepSummary:
    """Prepare every clip not already done; rewrite the cache manifest and summary from all clips' records."""
    options = options or PrepOptions()
    cache = Path(cache)
    try:
        (cache / "clips").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(cache, f"cannot create the cache folder ({exc.strerror or exc})") from None
    t0 = time.perf_counter()
    todo = [s for s in sources if not is_done(cache, s, options)]
    done_before = len(sources) - len(todo)
    finished = done_before
    if progress is not None and done_before:
        progress(ClipRecord("", "", "", "", "ok"), finished, len(sources))
    # The longest clips first, so the pool does not end waiting on one long straggler.
    todo.sort(key=lambda s: -_size_of(s.path))
    if jobs <= 1 or len(todo) <= 1:
        from dubber.face.tracker import FaceTracker

        with FaceTracker() as tracker:
            for s in todo:
                rec = prepare_clip(s, cache, options, tracker)
                finished += 1
                if progress is not None:
                    progress(rec, finished, len(sources))
    elif todo:
        ctx = multiprocessing.get_context("spawn")  # MediaPipe's threads do not survive fork
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init) as pool:
            pending: set[Future] = {pool.submit(_worker_prepare, s, cache, options) for s in todo}
            while pending:
                complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in complete:
                    rec = fut.result()
                    finished += 1
                    if progress is not None:
                        progress(rec, finished, len(sources))
    return write_manifest(sources, cache, options, jobs, len(todo), done_before, time.perf_counter() - t0)


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _listed_clip_ids(cache: Path) -> list[str]:
    try:
        with open(cache / MANIFEST_NAME, newline="") as f:
            return [row["clip_id"] for row in csv.DictReader(f)]
    except (OSError, KeyError, csv.Error):
        return []


def write_manifest(
    sources: list[ClipSource],
    cache: Path,
    options: PrepOptions,
    jobs: int,
    prepared_now: int,
    already_done: int,
    seconds: float,
) -> PrepSummary:
    """The cache manifest (one row per clip, OK or skipped) and ``prep.json``, written atomically.

    Clips an earlier run listed stay listed: preparing another split into the same cache adds to it.
    """
    ids = [s.clip_id for s in sources]
    ids += [i for i in _listed_clip_ids(cache) if i not in set(ids)]
    records = [r for r in (read_record(cache, i) for i in ids) if r is not None]
    tmp = cache / (MANIFEST_NAME + ".partial")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow(r.to_dict())
    os.replace(tmp, cache / MANIFEST_NAME)
    ok = [r for r in records if r.status == "ok"]
    splits: dict[str, dict[str, float]] = {}
    for split in sorted({r.split for r in ok}):
        rs = [r for r in ok if r.split == split]
        splits[split] = {
            "clips": len(rs),
            "speakers": len({r.speaker for r in rs}),
            "frames": sum(r.frames for r in rs),
            "usable_frames": sum(r.usable_frames for r in rs),
            "minutes": round(sum(r.seconds for r in rs) / 60.0, 2),
            "with_audio": sum(r.has_audio for r in rs),
        }
    reasons = Counter(r.reason for r in records if r.status == "skipped")
    summary = PrepSummary(
        cache=str(cache),
        clips=len(sources),
        prepared_now=prepared_now,
        already_done=already_done,
        ok=len(ok),
        skipped=len(records) - len(ok),
        skipped_reasons=dict(reasons.most_common()),
        splits=splits,
        seconds=round(seconds, 1),
        jobs=jobs,
        options=asdict(options),
    )
    tmp = cache / (SUMMARY_NAME + ".partial")
    tmp.write_text(json.dumps(summary.to_dict(), indent=1))
    os.replace(tmp, cache / SUMMARY_NAME)
    return summary
