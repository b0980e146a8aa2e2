"""The dub's first pass: the face tracked through the video (``analyse_video``), with the problems a user should
hear about (a ``--face`` the video does not show, a face too small to dub visibly, no face at all)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dubber.cpu_threads import free_cores, usable_cores
from dubber.errors import InputError
from dubber.face.aligner import FaceAligner
from dubber.face.backend import FaceBackend
from dubber.face.backends import make_backend
from dubber.face.tracker import FaceTracker, TrackerOptions
from dubber.log import get_logger
from dubber.media.video_reader import VideoReader
from dubber.pipeline.analysis import VideoTrack, analyse_video
from dubber.pipeline.frame_source import FrameSpool
from dubber.pipeline.job import DubJob
from dubber.pipeline.parallel_tracking import (
    CORES_PER_TRACKER,
    MIN_SEGMENT_SECONDS,
    analyse_in_segments,
    tracking_workers,
)

log = get_logger("pipeline")

# The face crop's side in frame pixels under which a redrawn mouth spans only a few pixels (about a third of it).
SMALLEST_CLEAR_FACE = 48


def idle_cores(frames: int | None = None, fps: float = 25.0) -> int:
    """The cores pass 1 may take: on a host large enough to track in segments, the ones idle now (the workers of a
    batch share the host); elsewhere, or for a video of ``frames`` too short for two segments, the usable ones,
    without sampling (a 0.1 s wait)."""
    cores = usable_cores()
    short = frames is not None and frames < 2 * MIN_SEGMENT_SECONDS * max(fps, 1.0)
    return free_cores() if cores >= 2 * CORES_PER_TRACKER and not short else cores


def track_faces(
    job: DubJob,
    crop_size: int,
    spool: FrameSpool | None,
    backend_factory: Callable[[], FaceBackend] | None = None,
) -> VideoTrack:
    """Track ``job``'s video (its reader) into crops of ``crop_size``; its timings join the job's."""
    total = job.reader.frame_count
    report = (lambda n: job.progress("analyse", n, total)) if job.progress else None
    fps = float(job.reader.fps)
    # A still image is one frame: one tracker (tracking_workers counts segments by length).
    workers = tracking_workers(idle_cores(total, fps), total, fps) if job.opts.overlap else 1
    backends: list[FaceBackend] = []
    aspect = float(job.reader.info.sample_aspect or 1)  # an anamorphic video's crops are square on screen

    def make_tracker() -> FaceTracker:
        if backend_factory is not None:
            backend = backend_factory()
        else:
            backend = make_backend(job.opts.face_backend, job.opts.face_models)
        backends.append(backend)
        options = TrackerOptions(face_index=job.opts.face_index, face_side=job.opts.face_side, pixel_aspect=aspect)
        return FaceTracker(backend, options)

    try:
        if workers > 1:
            log.info("%s: tracking in %d segments at once", job.video, workers)
            track = analyse_in_segments(
                job.reader, make_tracker, FaceAligner(crop_size), workers, spool=spool, progress=report
            )
        else:
            with make_tracker() as tracker:
                track = analyse_video(
                    job.reader,
                    tracker,
                    FaceAligner(crop_size),
                    spool=spool,
                    progress=report,
                    overlap=job.opts.overlap,
                )
    finally:
        for backend in backends:
            backend.close()
    job.timings.update(track.seconds)
    _check_faces(job, track)
    return track


def track_video(video: Path, crop_size: int) -> VideoTrack:
    """``video``'s face tracked by one MediaPipe tracker as the dub tracks it (square on screen where its pixels are
    not), without a job: for scoring a video the dub wrote, or its original."""
    reader = VideoReader(video)
    options = TrackerOptions(pixel_aspect=float(reader.info.sample_aspect or 1))
    with FaceTracker(options=options) as tracker:
        return analyse_video(reader, tracker, FaceAligner(crop_size))


def check_person(video: Path, person: int | None, track: VideoTrack) -> None:
    """``--person``: a person the track told apart (one, where it told none apart but found a face)."""
    if person is None:
        return
    told = len(track.person_order()) or int(bool(track.has_face.any()))
    if person >= max(told, 1):  # person 0 of a video without a face: nothing to dub, as without --person
        shows = {0: "no face", 1: "one person"}.get(told, f"{told} people")
        raise InputError(
            video,
            f"--person {person} needs {person + 1} people told apart and the video shows {shows} (--person 0 is "
            "the person seen longest; `dub inspect` lists them)",
        )
    redrawn, faces = int(track.person_frames(person).sum()), int(track.has_face.sum())
    log.info("%s: only person %d is dubbed, in %d of the %d frames with a face", video, person, redrawn, faces)


def _check_faces(job: DubJob, track: VideoTrack) -> None:
    wanted = job.opts.face_index
    if wanted > 0 and not track.has_face.any():
        shows = f"at most {track.most_faces}" if track.most_faces else "none"
        raise InputError(
            job.video,
            f"--face {wanted} needs {wanted + 1} faces in a frame and the video shows "
            f"{shows} (--face 0 is the largest face)",
        )
    if not track.has_face.any():
        log.warning("%s: no face found in any frame; the video is kept as it is, with the new audio", job.video)
        return
    side = float(np.median(track.transforms[track.has_face, 2]))  # frame pixels per crop side
    if side < SMALLEST_CLEAR_FACE:
        log.warning(
            "%s: the face is about %d px across; a mouth this small barely changes when redrawn (faces of "
            "%d px or more dub visibly)",
            job.video,
            round(side),
            SMALLEST_CLEAR_FACE,
        )
