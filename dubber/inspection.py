"""``dub inspect``: what a video holds and how well faces are found in it, optionally with an overlay preview."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from dubber.face.aligner import FaceAligner
from dubber.face.identities import Identities, People
from dubber.face.tracker import FaceTracker, TrackerOptions
from dubber.media.audio_feed import own_sound
from dubber.media.encode_options import VideoEncodeOptions, container_format_for
from dubber.media.probe import MediaInfo, probe_media
from dubber.media.stream_tags import SourceExtras, read_extras
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter

ProgressCallback = Callable[[int, int], None]  # (frames done, frames total)


@dataclass
class FaceSpan:
    """A run of consecutive frames without a face: [start_frame, end_frame) and the same in seconds."""

    start_frame: int
    end_frame: int
    start: float
    end: float


@dataclass
class InspectReport:
    media: MediaInfo
    frames: int
    frames_with_face: int
    no_face_spans: list[FaceSpan] = field(default_factory=list)
    median_face_size: float | None = None  # pixels, larger side of the landmark box
    yaw_range: tuple[float, float] | None = None  # degrees
    pitch_range: tuple[float, float] | None = None
    roll_range: tuple[float, float] | None = None
    scene_cuts: int = 0
    # The most faces one detection found (detection runs where no face is being followed): ``--face`` picks among them.
    most_faces: int = 0
    people: int = 0  # the people the dub would tell apart (dubber/face/identities.py; 0: none facing the camera)
    # Each of them as ``--person`` counts them (seen longest first): the frames they are seen in, and when first.
    persons: list[PersonSeen] = field(default_factory=list)
    seconds: float = 0.0
    preview: Path | None = None
    extras: SourceExtras = field(default_factory=SourceExtras)  # tags, languages, chapters, subtitle tracks

    @property
    def face_ratio(self) -> float:
        return self.frames_with_face / self.frames if self.frames else 0.0

    def to_dict(self) -> dict:
        return {
            "media": self.media.to_dict(),
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            "face_ratio": round(self.face_ratio, 4),
            "no_face_spans": [vars(s) for s in self.no_face_spans],
            "median_face_size": self.median_face_size,
            "yaw_range": self.yaw_range,
            "pitch_range": self.pitch_range,
            "roll_range": self.roll_range,
            "scene_cuts": self.scene_cuts,
            "most_faces": self.most_faces,
            "people": self.people,
            "persons": [vars(p) for p in self.persons],
            "seconds": round(self.seconds, 3),
            "preview": str(self.preview) if self.preview else None,
            "title": self.extras.tags.get("title"),
            "audio_languages": [a.language for a in self.extras.audio],
            "subtitles": [s.to_dict() for s in self.extras.subtitles],
            "chapters": [vars(c) for c in self.extras.chapters],
        }


@dataclass
class PersonSeen:
    person: int  # ``--person``'s number
    frames: int
    first_seen: float  # seconds


def _persons(identities: Identities, fps: float) -> list[PersonSeen]:
    first = {
        who: min(run for run, k in identities.of_run.items() if k == who) for who in set(identities.of_run.values())
    }
    return [
        PersonSeen(rank, int(identities.frames[k]), round(first.get(k, 0) / fps, 3))
        for rank, k in enumerate(identities.ranked())
    ]


def _range(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return round(float(np.min(values)), 1), round(float(np.max(values)), 1)


def inspect_video(
    path: str | Path,
    *,
    preview: str | Path | None = None,
    overwrite: bool = False,
    tracker_options: TrackerOptions | None = None,
    progress: ProgressCallback | None = None,
) -> InspectReport:
    """Probe ``path``, track its face through every frame, and optionally write an overlay preview video."""
    from dubber.overlay import draw_face  # cv2 drawing only when a preview is asked for

    started = time.perf_counter()
    media = probe_media(path, require_video=True)
    if preview is not None:
        container_format_for(preview)  # an unsupported preview type fails before any decoding
    reader = VideoReader(path, info=media)
    width, height = reader.size
    writer = None
    if preview is not None:
        audio = own_sound(path) if media.audio else None
        writer = VideoWriter(
            preview,
            width=width,
            height=height,
            fps=reader.fps,
            time_base=reader.info.time_base,
            options=VideoEncodeOptions(crf=20, preset="veryfast"),
            audio=audio,
            overwrite=overwrite,
            sample_aspect=reader.info.sample_aspect,
        ).open()
    sizes: list[float] = []
    angles: list[tuple[float, float, float]] = []
    spans: list[FaceSpan] = []
    frames = with_face = cuts = 0
    open_span: tuple[int, float] | None = None
    total = reader.frame_count
    people, aligner = People(), FaceAligner()
    try:
        # An anamorphic face is tracked as shaped on screen, as the dub tracks it.
        options = replace(tracker_options or TrackerOptions(), pixel_aspect=float(reader.info.sample_aspect or 1))
        with FaceTracker(options=options) as tracker:
            for step in tracker.track(reader):
                frames += 1
                cuts += step.scene_cut
                if step.scene_cut:
                    people.saw_cut()
                face = step.face
                if face is not None:
                    with_face += 1
                    sizes.append(face.size)
                    angles.append(face.angles)
                    if step.reacquired or people.run.run < 0:
                        people.start_run(step.frame.index)
                    crop = partial(aligner.crop, step.frame.image, face.transform)
                    people.see(step.frame.index, face.angles[:2], crop)
                    if open_span is not None:
                        spans.append(FaceSpan(open_span[0], step.frame.index, open_span[1], step.frame.time))
                        open_span = None
                elif open_span is None:
                    open_span = (step.frame.index, step.frame.time)
                if writer is not None:
                    writer.write(draw_face(step.frame.image, face))
                if progress is not None:
                    progress(frames, total)
            most_faces = tracker.most_faces
        if open_span is not None:
            spans.append(FaceSpan(open_span[0], frames, open_span[1], reader.info.duration))
        people.end_run()
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    yaw, pitch, roll = (list(a) for a in zip(*angles, strict=False)) if angles else ([], [], [])
    return InspectReport(
        media=media,
        frames=frames,
        frames_with_face=with_face,
        no_face_spans=spans,
        median_face_size=round(float(np.median(sizes)), 1) if sizes else None,
        yaw_range=_range(yaw),
        pitch_range=_range(pitch),
        roll_range=_range(roll),
        scene_cuts=cuts,
        most_faces=most_faces,
        people=len(people.identities.looks),
        persons=_persons(people.identities, float(reader.fps)) if len(people.identities.looks) > 1 else [],
        seconds=time.perf_counter() - started,
        preview=Path(preview) if preview is not None else None,
        extras=read_extras(path),
    )
