"""``DubbingPipeline``: a video (or a still image) and new speech in, the dubbed video out (DESIGN.md §1, §2, §7).

Two streamed passes over the source, so memory does not grow with its length:
1. analysis: decode, track the face, keep per-frame transforms and points and a bounded pool of reference crops;
2. dub: decode again (or read the spool when the video is extended), and per chunk of frames predict lips and jaw
   from the audio (overlapping windows), redraw the lower faces (one initial noise for every frame), paste them back
   and encode, with the new audio muxed as the video advances.
The second pass needs the first's global view: references spread over the whole video's mouth openings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dubber.audio.features import audio_features
from dubber.errors import OutputError
from dubber.face.aligner import FaceAligner, Similarity
from dubber.face.backend import FaceBackend
from dubber.face.tracker import FaceTracker, TrackerOptions
from dubber.log import get_logger
from dubber.media.atomic import check_output_path
from dubber.media.audio import decode_audio
from dubber.media.encode_options import VideoEncodeOptions, container_format_for
from dubber.media.probe import probe_media
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.pipeline.analysis import VideoTrack, analyse_video
from dubber.pipeline.audio_tracks import output_audio
from dubber.pipeline.compositor import CompositeOptions, Compositor
from dubber.pipeline.frame_source import FrameSpool, frames_in_order
from dubber.pipeline.motion import MotionPlanner
from dubber.pipeline.options import DubOptions, DubResult, resolve_device, resolve_dtype
from dubber.pipeline.timeline import Timeline
from dubber.render.image_tensors import to_model_range, to_uint8
from dubber.render.renderer_pipeline import FaceRenderer

log = get_logger("pipeline")

N_POSE = 74

# progress(stage, done, total): stage "analyse" (first pass) or "dub" (second pass), counts in frames.
ProgressCallback = Callable[[str, int, int], None]


def default_output(video: str | Path) -> Path:
    """``<stem>.dubbed.mp4`` beside the input."""
    p = Path(video)
    return p.with_name(f"{p.stem}.dubbed.mp4")


@dataclass
class _References:
    crops: torch.Tensor  # (K, 3, S, S) in [-1, 1]
    points: torch.Tensor  # (K, 131, 2)
    tokens: dict
    landmark_sets: np.ndarray  # (R, 131, 2) for the completer
    pool_crops: torch.Tensor  # (P, 3, S, S): one frame per mouth-opening bin
    pool_points: torch.Tensor  # (P, 131, 2)

    def nearest(self, targets: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per frame, the ``count`` pool frames whose lips and jaw are nearest the target's: (B, K, ...)."""
        d = (self.pool_points[None, :, N_POSE:] - targets[:, None, N_POSE:]).norm(dim=-1).mean(-1)  # (B, P)
        order = d.argsort(dim=1)[:, :count]
        if order.shape[1] < count:  # fewer bins than references: repeat the nearest
            order = torch.cat([order, order[:, :1].expand(-1, count - order.shape[1])], dim=1)
        return self.pool_crops[order], self.pool_points[order]


class DubbingPipeline:
    """The landmark completer and the renderer, loaded once and used for any number of videos."""

    def __init__(
        self,
        landmarks: LandmarkCompleter,
        renderer: FaceRenderer,
        *,
        options: DubOptions | None = None,
        backend_factory: Callable[[], FaceBackend] | None = None,
        name: str = "custom",
    ) -> None:
        self.landmarks = landmarks.eval()
        self.renderer = renderer
        self.options = options or DubOptions()
        self.backend_factory = backend_factory
        self.name = name

    @classmethod
    def from_pretrained(
        cls,
        path_or_name: str | Path = "default",
        *,
        device: str = "auto",
        dtype: str = "auto",
        options: DubOptions | None = None,
        backend_factory: Callable[[], FaceBackend] | None = None,
    ) -> DubbingPipeline:
        """Weights by name from the weights folder (``DUB_WEIGHTS`` or the shipped ``weights/``), sha256-checked,
        or from a folder holding ``landmarks/`` and ``renderer/``."""
        from dubber.weights import load_landmark_model, load_renderer, resolve_bundle

        dev = resolve_device(device)
        bundle = resolve_bundle(path_or_name)
        landmarks = load_landmark_model(bundle.landmarks, device=dev)
        renderer = load_renderer(bundle.renderer, device=dev, dtype=resolve_dtype(dtype, dev))
        return cls(landmarks, renderer, options=options, backend_factory=backend_factory, name=bundle.name)

    @property
    def device(self) -> torch.device:
        return self.renderer.device

    # -- one dub ---------------------------------------------------------------------------------------------------
    def __call__(
        self,
        video: str | Path,
        audio: str | Path,
        output: str | Path | None = None,
        *,
        options: DubOptions | None = None,
        progress: ProgressCallback | None = None,
        **overrides,
    ) -> DubResult:
        """Dub ``video`` with ``audio`` into ``output`` (default ``<stem>.dubbed.mp4`` beside the video).

        ``overrides`` are :class:`DubOptions` fields (``steps=4``, ``fit="loop"``...). Nothing appears at
        ``output`` unless the whole dub succeeds.
        """
        opts = (options or self.options).updated(**overrides)
        started = time.perf_counter()
        video, audio = Path(video), Path(audio)
        output = default_output(video) if output is None else Path(output)
        container_format_for(output)
        check_output_path(output, overwrite=opts.overwrite)
        if output.exists() and output.resolve() in (video.resolve(), audio.resolve()):
            raise OutputError(output, "is one of the inputs; choose another output name")
        media = probe_media(video, require_video=True)
        speech = decode_audio(audio)
        features = audio_features(speech)
        reader = VideoReader(video, info=media)
        fps = float(reader.fps)

        # Spool frames in the analysis pass when the output will need them out of order.
        estimate = Timeline.plan(max(1, reader.frame_count), speech.duration, fps, opts.fit, opts.keep_rest)
        spool = None
        if not estimate.forward_only:
            spool = FrameSpool(*reader.size, estimate.source_frames)
        try:
            return self._dub(video, audio, output, media, reader, speech.duration, features, spool, opts, progress,
                             started)  # fmt: skip
        finally:
            if spool is not None:
                spool.close()

    def _dub(self, video, audio, output, media, reader, audio_seconds, features, spool, opts, progress, started):
        timings: dict[str, float] = {}
        aligner = FaceAligner(self.renderer.size)
        backend = self.backend_factory() if self.backend_factory is not None else None
        total_estimate = reader.frame_count
        report = (lambda n: progress("analyse", n, total_estimate)) if progress else None
        with FaceTracker(backend, TrackerOptions(face_index=opts.face_index)) as tracker:
            track = analyse_video(reader, tracker, aligner, spool=spool, progress=report)
        if backend is not None:
            backend.close()
        timings.update(track.seconds)
        still = track.frames == 1
        fps = float(opts.fps) if still else float(reader.fps)
        timeline = Timeline.plan(track.frames, audio_seconds, fps, opts.fit, opts.keep_rest)
        if not timeline.forward_only and spool is None:  # the container under-declared its length
            spool = FrameSpool(*reader.size, track.frames)
            for frame in reader:
                spool.append(frame.image)
        if not track.has_face.any():
            log.warning("%s: no face found in any frame; the video is kept as it is, with the new audio", video)
        t0 = time.perf_counter()
        refs = self._references(track) if track.has_face.any() else None
        timings["landmarks"] = time.perf_counter() - t0
        motion = None
        if refs is not None:
            motion = MotionPlanner(self.landmarks, features, fps, timeline, track.filled_points(), refs.landmark_sets)
        width, height = reader.size
        writer = VideoWriter(
            output, width=width, height=height, fps=opts.fps if still else reader.fps,
            time_base=None if still else reader.info.time_base,
            options=VideoEncodeOptions(crf=opts.crf, preset=opts.preset),
            audio=output_audio(audio, media, timeline, fps, keep_original=opts.keep_original_audio),
            overwrite=opts.overwrite,
        )  # fmt: skip
        compositor = Compositor(self.renderer.size, CompositeOptions(colour_match=opts.colour_match))
        faces = 0
        with writer:
            source = frames_in_order(reader, (timeline.source_index(i) for i in range(timeline.total_frames)), spool)
            for start in range(0, timeline.total_frames, opts.batch_size):
                stop = min(start + opts.batch_size, timeline.total_frames)
                t0 = time.perf_counter()
                images = [next(source).copy() for _ in range(start, stop)]
                _add(timings, "decode", t0)
                faces += self._dub_chunk(images, start, timeline, track, motion, refs, aligner, compositor, opts,
                                         timings)  # fmt: skip
                t0 = time.perf_counter()
                for image in images:
                    writer.write(image)
                _add(timings, "encode", t0)
                if progress is not None:
                    progress("dub", stop, timeline.total_frames)
            t0 = time.perf_counter()
        _add(timings, "encode", t0)  # flushing the encoder and the audio
        timings["total"] = time.perf_counter() - started
        return DubResult(
            output=Path(output), frames=timeline.total_frames, dubbed_frames=timeline.dub_frames, face_frames=faces,
            seconds=timeline.total_frames / fps, fps=fps, width=width, height=height, source_frames=track.frames,
            still_image=still, timings=timings,
        )  # fmt: skip

    def _references(self, track: VideoTrack) -> _References:
        crops, points, _ = track.pool.choose(self.renderer.n_refs)
        crops_t, points_t = to_model_range(crops), torch.from_numpy(points)
        tokens = self.renderer.encode_references(crops_t, points_t)
        pool_crops, pool_points, _ = track.pool.choose(len(track.pool))
        return _References(crops_t, points_t, tokens, track.landmark_references(self.landmarks.config.n_refs),
                           to_model_range(pool_crops), torch.from_numpy(pool_points))  # fmt: skip

    def _dub_chunk(self, images, start, timeline, track, motion, refs, aligner, compositor, opts, timings) -> int:
        """Redraw the faces of output frames ``start..start+len(images)-1`` in place; returns how many."""
        if motion is None:
            return 0
        stop = min(start + len(images), timeline.dub_frames)
        todo = [i for i in range(start, stop) if track.has_face[timeline.source_index(i)]]
        if not todo:
            return 0
        t0 = time.perf_counter()
        targets = motion.targets(start, stop)[np.asarray(todo) - start]
        _add(timings, "landmarks", t0)
        t0 = time.perf_counter()
        transforms = [Similarity(*track.transforms[timeline.source_index(i)]) for i in todo]
        crops = np.stack([aligner.crop(images[i - start], tf) for i, tf in zip(todo, transforms, strict=True)])
        _add(timings, "composite", t0)
        t0 = time.perf_counter()
        targets_t = torch.from_numpy(targets)
        if opts.references == "nearest":
            ref_crops, ref_points = refs.nearest(targets_t, self.renderer.n_refs)
            tokens = self.renderer.encode_references(ref_crops, ref_points)
        else:
            ref_crops, ref_points, tokens = refs.crops, refs.points, refs.tokens
        rendered = self.renderer(
            to_model_range(crops), targets_t, ref_crops, ref_points, reference_tokens=tokens,
            steps=opts.steps or self.renderer.default_steps, seed=opts.seed, guidance=opts.guidance,
            scheduler=opts.scheduler,
        )  # fmt: skip
        rendered = to_uint8(rendered)
        _add(timings, "render", t0)
        t0 = time.perf_counter()
        for k, i in enumerate(todo):
            compositor.paste(images[i - start], rendered[k], crops[k], transforms[k])
        _add(timings, "composite", t0)
        return len(todo)


def _add(timings: dict[str, float], key: str, t0: float) -> None:
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
