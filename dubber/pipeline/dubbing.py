"""``DubbingPipeline``: a video (or a still image) and new speech in, the dubbed video out (docs/ARCHITECTURE.md
§1, §2, §7).

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
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dubber.audio.features import AudioFeatures
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures
from dubber.audio.streaming import StreamedFeatures, stream_features
from dubber.errors import InputError
from dubber.face.aligner import FaceAligner
from dubber.face.backend import FaceBackend
from dubber.face.backends import make_backend
from dubber.face.tracker import FaceTracker, TrackerOptions
from dubber.log import get_logger
from dubber.media.dub_inputs import check_dub_inputs
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.probe import MediaInfo, probe_media
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.speech_encoder import SpeechEncoder
from dubber.pipeline.adaptation import MIN_SPEECH_SECONDS, AdaptationSettings, adapt_completer, speech_frames
from dubber.pipeline.adaptation_cache import AdaptationCache, entry_key
from dubber.pipeline.analysis import VideoTrack, analyse_video
from dubber.pipeline.audio_tracks import output_audio
from dubber.pipeline.auto_batch import auto_batch_size
from dubber.pipeline.dub_pass import DubPassSettings, write_frames
from dubber.pipeline.face_redraw import FaceRedrawer, ReferenceSet, add_time
from dubber.pipeline.frame_source import FrameSpool, frames_in_order
from dubber.pipeline.motion import MotionPlanner
from dubber.pipeline.options import DubOptions, DubResult, resolve_device, resolve_dtype
from dubber.pipeline.timeline import Timeline
from dubber.render.renderer_pipeline import FaceRenderer

log = get_logger("pipeline")

# The face crop's side in frame pixels under which a redrawn mouth spans only a few pixels (about a third of it).
SMALLEST_CLEAR_FACE = 48

# progress(stage, done, total): stage "analyse" (first pass) or "dub" (second pass), counts in frames.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class _Job:
    """One call's inputs and the state its stages share."""

    video: Path
    audio: Path
    output: Path
    opts: DubOptions
    progress: ProgressCallback | None
    started: float
    media: MediaInfo | None = None
    reader: VideoReader | None = None
    features: AudioFeatures | SpeechFeatures | MelAndSpeechFeatures | None = None
    audio_seconds: float = 0.0
    still: bool = False
    fps: float = 25.0
    batch_size: int = 8
    timings: dict[str, float] = field(default_factory=dict)


class DubbingPipeline:
    """The landmark completer and the renderer, loaded once and used for any number of videos."""

    def __init__(
        self,
        landmarks: LandmarkCompleter | LandmarkEnsemble,
        renderer: FaceRenderer,
        *,
        options: DubOptions | None = None,
        backend_factory: Callable[[], FaceBackend] | None = None,
        name: str = "custom",
        speech_encoder: SpeechEncoder | None = None,
        runtime: str = "torch",
    ) -> None:
        """``speech_encoder``: for a completer that reads speech features (default: the shipped encoder it names).
        ``runtime``: "onnx" when the models are onnxruntime stand-ins (``dubber.runtime``), which cannot adapt."""
        self.runtime = runtime
        self.landmarks = landmarks.eval()
        self.speech_encoder = speech_encoder
        if landmarks.config.audio_input != "mel" and landmarks.config.speech_encoder and speech_encoder is None:
            from dubber.weights import load_speech_encoder

            param = next(landmarks.parameters())  # the encoder runs where and as precisely as the completer
            self.speech_encoder = load_speech_encoder(
                landmarks.config.speech_encoder, device=param.device, dtype=param.dtype
            )
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
        runtime: str = "torch",
    ) -> DubbingPipeline:
        """Weights by name from the weights folder (``DUB_WEIGHTS`` or the shipped ``weights/``), sha256-checked,
        or from a folder holding ``landmarks/`` and ``renderer/``. ``dtype`` applies to every model (the landmark
        completer, its speech encoder, the renderer and its reference encoder). ``runtime`` "onnx": the models run
        with onnxruntime, from an export of ``dub export onnx`` or from these weights exported once into the cache
        folder (``dubber.runtime.onnx_bundle``)."""
        from dubber.weights import load_landmark_model, load_renderer, resolve_bundle

        if runtime == "onnx":
            return cls._from_onnx(path_or_name, device, dtype, options, backend_factory)
        if runtime != "torch":
            raise InputError(None, f"unknown runtime {runtime!r}; choose from torch, onnx")
        dev = resolve_device(device)
        precision = resolve_dtype(dtype, dev)
        bundle = resolve_bundle(path_or_name)
        landmarks = load_landmark_model(bundle.landmarks, device=dev, dtype=precision)
        renderer = load_renderer(bundle.renderer, device=dev, dtype=precision)
        return cls(landmarks, renderer, options=options, backend_factory=backend_factory, name=bundle.name)

    @classmethod
    def _from_onnx(cls, weights, device: str, dtype: str, options, backend_factory) -> DubbingPipeline:
        from dubber.pipeline.adaptation_cache import default_cache_dir
        from dubber.runtime.onnx_bundle import load_onnx_models, onnx_export_for, providers, require_onnxruntime

        require_onnxruntime()
        if (dtype or "auto") not in ("auto", "float32"):
            raise InputError(None, f"--dtype {dtype}: the ONNX graphs are float32 (--runtime torch for other dtypes)")
        device = (device or "auto").strip().lower()
        if device not in ("auto", "cpu", "cuda"):
            raise InputError(None, f"--device {device}: with --runtime onnx give auto, cpu or cuda")
        chosen = ["CPUExecutionProvider"] if device == "cpu" else providers()
        if device == "cuda" and "CUDAExecutionProvider" not in chosen:
            raise InputError(
                None, "--device cuda: this onnxruntime has no CUDA provider (pip install 'dubber[onnx-gpu]')"
            )
        opts = options or DubOptions()
        cache = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
        folder = onnx_export_for(weights, cache)
        landmarks, renderer, speech = load_onnx_models(folder, chosen)
        name = str(weights)
        return cls(
            landmarks,
            renderer,
            options=opts,
            backend_factory=backend_factory,
            name=name,
            speech_encoder=speech,
            runtime="onnx",
        )

    def with_landmarks(self, landmarks: LandmarkCompleter | LandmarkEnsemble) -> DubbingPipeline:
        """This pipeline with another completer (an adapted one, say) and adaptation off."""
        return DubbingPipeline(
            landmarks,
            self.renderer,
            options=self.options.updated(adapt="off"),
            backend_factory=self.backend_factory,
            name=self.name,
            speech_encoder=self.speech_encoder,
            runtime=self.runtime,
        )

    @property
    def device(self) -> torch.device:
        return self.renderer.device

    def _audio_features(self, audio: Path) -> StreamedFeatures:
        """The completer's input from ``audio``, decoded and computed block by block, the rows kept on disk."""
        kind = self.landmarks.config.audio_input
        if self.speech_encoder is None:
            kind = "mel"
        elif kind != "speech":  # an ensemble's members may read either: compute both
            kind = "mel+speech"
        return stream_features(audio, kind, self.speech_encoder, layer=self.landmarks.config.speech_layer)

    # -- one dub ---------------------------------------------------------------------------------------------------
    def __call__(
        self,
        video: str | Path,
        audio: str | Path,
        output: str | Path | None = None,
        *,
        options: DubOptions | None = None,
        progress: ProgressCallback | None = None,
        analysis: VideoTrack | None = None,
        **overrides,
    ) -> DubResult:
        """Dub ``video`` with ``audio`` into ``output`` (default ``<stem>.dubbed.mp4`` beside the video).

        ``overrides`` are :class:`DubOptions` fields (``steps=4``, ``fit="loop"``...). Nothing appears at
        ``output`` unless the whole dub succeeds. ``analysis``: this video's :meth:`analyse` result, to dub it with
        several audios while tracking it once.
        """
        opts = (options or self.options).updated(**overrides)
        started = time.perf_counter()
        output, media = check_dub_inputs(video, audio, output, overwrite=opts.overwrite)
        job = _Job(Path(video), Path(audio), output, opts, progress=progress, started=started, media=media)
        with ExitStack() as cleanup:
            t0 = time.perf_counter()
            streamed = self._audio_features(job.audio)
            cleanup.callback(streamed.close)
            job.audio_seconds, job.features = streamed.seconds, streamed.features
            add_time(job.timings, "audio", t0)  # decoding, and the speech encoder where the completer reads it
            job.reader = reader = VideoReader(job.video, info=job.media)
            # Spool, in the analysis pass, the frames the output will show again after later ones.
            estimate = Timeline.plan(
                max(1, reader.frame_count), job.audio_seconds, float(reader.fps), opts.fit, opts.keep_rest
            )
            spool = None
            if analysis is not None:
                track = analysis  # a spool, when one is needed, is filled below by decoding once more
            else:
                if not estimate.forward_only:
                    spool = cleanup.enter_context(closing(FrameSpool(*reader.size, estimate.revisited())))
                track = self._analyse(job, spool)
            job.still = track.frames == 1
            job.fps = float(opts.fps) if job.still else float(reader.fps)
            timeline = Timeline.plan(track.frames, job.audio_seconds, job.fps, opts.fit, opts.keep_rest)
            revisited = timeline.revisited()
            if revisited and (spool is None or not spool.holds(revisited)):  # given an analysis, or a container
                spool = cleanup.enter_context(closing(FrameSpool(*reader.size, revisited)))  # that miscounted
                for frame in reader:
                    spool.offer(frame.index, frame.image)
            return self._write(job, track, timeline, spool, self.adapted_landmarks(job, track))

    def adapted_landmarks(self, job: _Job, track: VideoTrack) -> LandmarkCompleter | LandmarkEnsemble:
        """The completer fine-tuned on the video's own speech (``adapt``), or the loaded one where that is off or
        the video cannot teach it (a still image, no audio, too few frames with a face)."""
        mode = job.opts.adapt
        if mode == "off":
            return self.landmarks
        problem = None
        if self.runtime != "torch":
            problem = f"the {self.runtime} runtime's exported graphs do not train (adapt with --runtime torch)"
        elif job.still:
            problem = "a still image has no speech to learn from"
        elif job.media.audio is None:
            problem = "the video has no audio"
        elif speech_frames(track) < MIN_SPEECH_SECONDS * job.fps:
            problem = f"fewer than {MIN_SPEECH_SECONDS:g} s of frames with a face"
        if problem is not None:
            (log.warning if mode == "on" else log.info)("%s: not adapted to the speaker: %s", job.video, problem)
            return self.landmarks
        t0 = time.perf_counter()
        settings = AdaptationSettings(seconds=job.opts.adapt_seconds, seed=job.opts.seed)
        cache = AdaptationCache(Path(job.opts.cache_dir) if job.opts.cache_dir else None)
        key = entry_key(job.video, self.landmarks, settings)
        model = cache.load(key, self.landmarks)
        if model is not None:
            log.info("%s: the completer adapted to it before, from %s", job.video, cache.root / key)
        else:
            with closing(self._audio_features(job.video)) as own:
                refs = track.landmark_references(self.landmarks.config.n_refs)
                model, report = adapt_completer(self.landmarks, track, own.features, refs, settings)
            if report is not None:
                cache.store(key, model, job.video, report.seconds)
        add_time(job.timings, "adapt", t0)
        return model

    def adapt(self, video: str | Path, analysis: VideoTrack, *, options: DubOptions | None = None):
        """The completer adapted to ``video`` (its :meth:`analyse` result) as a dub with ``options`` would adapt it
        (``adapt`` "auto" unless the options say "on"), for evaluating it or for several dubs of one video."""
        opts = options or self.options
        opts = opts.updated(adapt="on" if opts.adapt == "on" else "auto")
        job = _Job(
            video=Path(video),
            audio=Path(video),
            output=Path(video),
            opts=opts,
            progress=None,
            started=time.perf_counter(),
            media=probe_media(video, require_video=True),
        )
        job.still, job.fps = analysis.frames == 1, analysis.frame_rate()
        return self.adapted_landmarks(job, analysis)

    def analyse(
        self, video: str | Path, *, options: DubOptions | None = None, progress: ProgressCallback | None = None
    ) -> VideoTrack:
        """The first pass alone (face track, reference pool), reusable by several dubs of ``video``; ``progress``
        hears its "analyse" stage."""
        job = _Job(
            video=Path(video),
            audio=Path(video),
            output=Path(video),
            opts=options or self.options,
            progress=progress,
            started=time.perf_counter(),
        )
        job.reader = VideoReader(job.video)
        return self._analyse(job, None)

    def planned_landmarks(
        self, analysis: VideoTrack, audio: str | Path, landmarks: LandmarkCompleter | LandmarkEnsemble | None = None
    ) -> np.ndarray:
        """(frames, 131, 2) the target landmarks a dub of the analysed video with ``audio`` draws (unit crop: the
        video's pose points, lips and jaw from the audio), one per dubbed frame (the video extended by ping-pong
        where the audio is longer); for evaluation."""
        fps = analysis.frame_rate(float(self.options.fps))
        with closing(self._audio_features(Path(audio))) as streamed:
            timeline = Timeline.plan(analysis.frames, streamed.seconds, fps, "pingpong", False)
            refs = analysis.landmark_references(self.landmarks.config.n_refs)
            motion = MotionPlanner(
                landmarks or self.landmarks,
                streamed.features,
                fps,
                timeline,
                analysis.points,
                analysis.filled_index(),
                refs,
            )
            return motion.targets(0, timeline.dub_frames)

    def _analyse(self, job: _Job, spool: FrameSpool | None) -> VideoTrack:
        factory = self.backend_factory
        backend = factory() if factory is not None else make_backend(job.opts.face_backend, job.opts.face_models)
        total = job.reader.frame_count
        report = (lambda n: job.progress("analyse", n, total)) if job.progress else None
        try:
            with FaceTracker(backend, TrackerOptions(face_index=job.opts.face_index)) as tracker:
                track = analyse_video(
                    job.reader,
                    tracker,
                    FaceAligner(self.renderer.size),
                    spool=spool,
                    progress=report,
                    overlap=job.opts.overlap,
                )
        finally:
            if backend is not None:
                backend.close()
        job.timings.update(track.seconds)
        wanted = job.opts.face_index
        if wanted > 0 and not track.has_face.any():
            shows = f"at most {track.most_faces}" if track.most_faces else "none"
            raise InputError(
                job.video,
                f"--face {wanted} needs {wanted + 1} faces in a frame and the video shows "
                f"{shows} (--face 0 is the largest face)",
            )
        if track.has_face.any():
            side = float(np.median(track.transforms[track.has_face, 2]))  # frame pixels per crop side
            if side < SMALLEST_CLEAR_FACE:
                log.warning(
                    "%s: the face is about %d px across; a mouth this small barely changes when redrawn (faces of "
                    "%d px or more dub visibly)",
                    job.video,
                    round(side),
                    SMALLEST_CLEAR_FACE,
                )
        else:
            log.warning("%s: no face found in any frame; the video is kept as it is, with the new audio", job.video)
        return track

    def _write(
        self,
        job: _Job,
        track: VideoTrack,
        timeline: Timeline,
        spool: FrameSpool | None,
        landmarks: LandmarkCompleter | LandmarkEnsemble,
    ) -> DubResult:
        opts, reader, timings = job.opts, job.reader, job.timings
        t0 = time.perf_counter()
        redraw = None
        if track.has_face.any():
            refs = ReferenceSet.from_track(
                track, self.renderer, landmarks.config.n_refs, per_frame=opts.references == "nearest"
            )
            motion = MotionPlanner(
                landmarks, job.features, job.fps, timeline, track.points, track.filled_index(), refs.landmark_sets
            )
            redraw = FaceRedrawer(self.renderer, track, timeline, motion, refs, opts, timings)
        add_time(timings, "landmarks", t0)
        width, height = reader.size
        job.batch_size = opts.batch_size or auto_batch_size(self.device, reader.size)
        writer = VideoWriter(
            job.output,
            width=width,
            height=height,
            fps=opts.fps if job.still else reader.fps,
            time_base=None if job.still else reader.info.time_base,
            options=VideoEncodeOptions(crf=opts.crf, preset=opts.preset),
            audio=output_audio(job.audio, job.media, timeline, job.fps, keep_original=opts.keep_original_audio),
            overwrite=opts.overwrite,
        )
        with writer:
            faces = write_frames(
                frames_in_order(reader, (timeline.source_index(i) for i in range(timeline.total_frames)), spool),
                timeline.total_frames,
                redraw,
                writer,
                DubPassSettings(job.batch_size, opts.overlap),
                timings,
                None if job.progress is None else partial(job.progress, "dub"),
            )
            t0 = time.perf_counter()
        add_time(timings, "encode", t0)  # flushing the encoder and the audio
        timings["total"] = time.perf_counter() - job.started
        guard = self.renderer.mouth_guard
        return DubResult(
            output=job.output,
            frames=timeline.total_frames,
            dubbed_frames=timeline.dub_frames,
            face_frames=faces,
            seconds=timeline.total_frames / job.fps,
            fps=job.fps,
            width=width,
            height=height,
            source_frames=track.frames,
            still_image=job.still,
            timings=timings,
            settings={
                "weights": self.name,
                "runtime": self.runtime,
                "steps": opts.steps or self.renderer.default_steps,
                "seed": opts.seed,
                "references": opts.references,
                "batch_size": job.batch_size,
                "guidance": opts.guidance,
                "scheduler": opts.scheduler or self.renderer.scheduler_name,
                "hint_warp": self.renderer.hint_warp,
                "face_backend": opts.face_backend,
                "source_detail": opts.source_detail,
                "reference_blend": self.renderer.reference_blend.to_dict()
                if opts.reference_blend and self.renderer.reference_blend is not None
                else None,
                "mouth_guard": guard.to_dict() if opts.reference_blend and guard is not None else None,
            },
        )
