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
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import ExitStack, closing
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dubber.audio.level import speech_input
from dubber.audio.streaming import StreamedFeatures, stream_features
from dubber.cpu_threads import start_torch_thread
from dubber.errors import InputError
from dubber.face.backend import FaceBackend
from dubber.log import get_logger
from dubber.media.container import sound_lead
from dubber.media.dub_inputs import check_dub_inputs
from dubber.media.probe import probe_media
from dubber.media.video_reader import VideoReader
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.speech_encoder import SpeechEncoder
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.articulation import MAX_SECONDS, HeardSpeech, LastReading, OwnSpeech, read_own_speech
from dubber.pipeline.auto_batch import auto_batch_size
from dubber.pipeline.dub_pass import encode_dub, render_workers
from dubber.pipeline.face_pass import check_person, track_faces
from dubber.pipeline.face_redraw import FaceRedrawer, ReferenceSet, add_time
from dubber.pipeline.frame_source import FrameSpool
from dubber.pipeline.job import DubJob, ProgressCallback, dub_settings
from dubber.pipeline.model_loading import load_models
from dubber.pipeline.motion import MotionPlanner, Spread
from dubber.pipeline.mouth_lag import MAX_LAG_SECONDS, MIN_CORRELATION
from dubber.pipeline.new_speech import new_speech_features
from dubber.pipeline.options import DubOptions, DubResult
from dubber.pipeline.person_references import LandmarkReferences
from dubber.pipeline.phase_clock import PhaseClock, phase_report
from dubber.pipeline.speaking_people import SpeakingPeople, read_speaking, redrawn_frames
from dubber.pipeline.sync_check import WINDOW_SECONDS, SyncReport, check_sync_inputs, read_sync
from dubber.pipeline.timeline import Timeline, check_start
from dubber.pipeline.video_adaptation import completer_for_video
from dubber.render.renderer_pipeline import FaceRenderer

__all__ = ["DubbingPipeline", "ProgressCallback"]

log = get_logger("pipeline")


class DubbingPipeline:
    """The landmark completer and the renderer, loaded once and used for any number of videos."""

    # Whether a dub reads the video's own speech (its spread and lag; evaluation's truth-landmarks pipeline does not).
    reads_own_speech = True

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
        self._last_reading = LastReading()  # several dubs of one analysed video (dub batch) read its speech once
        self._last_speaking = LastReading()  # ... and who speaks in it (--only-speaking)

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
        m = load_models(path_or_name, device, dtype, runtime, options)
        return cls(
            m.landmarks,
            m.renderer,
            options=options,
            backend_factory=backend_factory,
            name=m.name,
            speech_encoder=m.speech_encoder,
            runtime=m.runtime,
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

    def _audio_features(
        self, audio: Path, max_seconds: float | None = None, seconds: float | None = None, lead: float = 0.0
    ) -> StreamedFeatures:
        """The completer's input from ``audio``, decoded and computed block by block, the rows kept on disk; exactly
        ``seconds`` long when given (cut, or followed by silence); a surround mix's centre channel alone, and quiet
        speech raised to the level the models were trained at (``dubber.audio.level``); ``lead``: seconds its
        first sample comes after the features' start (``stream_features``)."""
        kind = self.landmarks.config.audio_input
        if self.speech_encoder is None:
            kind = "mel"
        elif kind != "speech":  # an ensemble's members may read either: compute both
            kind = "mel+speech"
        layer = self.landmarks.config.speech_layer
        read = speech_input(audio, seconds if max_seconds is None else max_seconds)
        return stream_features(
            audio,
            kind,
            self.speech_encoder,
            layer=layer,
            max_seconds=max_seconds,
            seconds=seconds,
            gain=read.gain,
            dialogue=read.centre,
            lead=lead,
        )

    def _own_features(self, video: Path, max_seconds: float | None = None) -> StreamedFeatures:
        """The completer's input from ``video``'s own sound, lined up with its frames as a player presents them
        (a sound that starts after the first frame, or before it: ``sound_lead``)."""
        return self._audio_features(Path(video), max_seconds, lead=sound_lead(video))

    # -- one dub ---------------------------------------------------------------------------------------------------
    def __call__(
        self,
        video: str | Path,
        audio: str | Path,
        output: str | Path | None = None,
        *,
        speech: str | Path | None = None,
        subtitles: str | Path | None = None,
        options: DubOptions | None = None,
        progress: ProgressCallback | None = None,
        analysis: VideoTrack | None = None,
        **overrides,
    ) -> DubResult:
        """Dub ``video`` with ``audio`` into ``output`` (default ``<stem>.dubbed.mp4`` beside the video).

        ``speech``: the voice the mouth follows, when ``audio`` (what the output carries) mixes it with music or
        effects: a dialogue stem on the same timeline (read from its start, cut or followed by silence to the
        audio's length). ``subtitles``: a subtitle file of the new speech (.srt, .ass, .vtt), added as a track
        tagged with its language, timed from where the new speech starts. ``overrides`` are :class:`DubOptions`
        fields (``steps=4``, ``fit="loop"``...). Nothing appears at ``output`` unless the whole dub succeeds.
        ``analysis``: this video's :meth:`analyse` result, to dub it with several audios while tracking it once.
        """
        opts = (options or self.options).updated(**overrides)
        started, clock = time.perf_counter(), PhaseClock()
        output, media = check_dub_inputs(
            video, audio, output, overwrite=opts.overwrite, speech=speech, subtitles=subtitles
        )
        job = DubJob(
            Path(video),
            Path(audio),
            output,
            opts,
            progress=progress,
            started=started,
            media=media,
            speech=None if speech is None else Path(speech),
            subtitles=None if subtitles is None else Path(subtitles),
            clock=clock,
        )
        job.reader = reader = VideoReader(job.video, info=job.media)
        check_start(job.video, opts.start, reader.frame_count, float(reader.fps))  # before any work
        with ExitStack() as cleanup:
            t0 = time.perf_counter()
            job.heard = self._hear_ahead(job, analysis)
            if job.heard is not None:
                cleanup.callback(job.heard.close)
            streamed = new_speech_features(self._audio_features, job.audio, job.speech)
            cleanup.callback(streamed.close)
            job.audio_seconds, job.features = streamed.seconds, streamed.features
            job.speech_centre, job.speech_gain = streamed.centre, streamed.gain
            add_time(job.timings, "audio", t0)  # decoding, and the speech encoder where the completer reads it
            clock.lap("audio")
            # Spool, in the analysis pass, the frames the output will show again after later ones.
            estimate = Timeline.plan(
                max(1, reader.frame_count), job.audio_seconds, float(reader.fps), opts.fit, opts.keep_rest, opts.start
            )
            spool = None
            if analysis is not None:
                track = analysis  # a spool, when one is needed, is filled below by decoding once more
            else:
                if not estimate.forward_only:
                    spool = cleanup.enter_context(closing(FrameSpool(*reader.size, estimate.revisited())))
                track = self._analyse(job, spool)
            job.still = track.frames == 1
            job.tracking_segments, job.people = track.segments, len(track.pool.identities.looks)
            check_person(job.video, opts.person, track)
            job.fps = float(opts.fps) if job.still else float(reader.fps)
            check_start(job.video, opts.start, track.frames, job.fps)  # decoded: a container may declare more
            timeline = Timeline.plan(track.frames, job.audio_seconds, job.fps, opts.fit, opts.keep_rest, opts.start)
            revisited = timeline.revisited()
            if revisited and (spool is None or not spool.holds(revisited)):  # given an analysis, or a container
                spool = cleanup.enter_context(closing(FrameSpool(*reader.size, revisited)))  # that miscounted
                for frame in reader.frames("planes"):
                    spool.offer(frame.index, frame.image)
            clock.lap("analyse")
            return self._write(job, track, timeline, spool, self._completer(job, track))

    def adapt(self, video: str | Path, analysis: VideoTrack, *, options: DubOptions | None = None):
        """The completer adapted to ``video`` (its :meth:`analyse` result) as a dub with ``options`` would adapt it
        (``adapt`` "auto" unless the options say "on"), for evaluating it or for several dubs of one video."""
        opts = options or self.options
        opts = opts.updated(adapt="on" if opts.adapt == "on" else "auto")
        job = DubJob(
            video=Path(video),
            audio=Path(video),
            output=Path(video),
            opts=opts,
            progress=None,
            started=time.perf_counter(),
            media=probe_media(video, require_video=True),
        )
        job.still, job.fps = analysis.frames == 1, analysis.frame_rate()
        return self._completer(job, analysis)

    def analyse(
        self, video: str | Path, *, options: DubOptions | None = None, progress: ProgressCallback | None = None
    ) -> VideoTrack:
        """The first pass alone (face track, reference pool), reusable by several dubs of ``video``; ``progress``
        hears its "analyse" stage."""
        job = DubJob(
            video=Path(video),
            audio=Path(video),
            output=Path(video),
            opts=options or self.options,
            progress=progress,
            started=time.perf_counter(),
        )
        job.reader = VideoReader(job.video)
        return self._analyse(job, None)

    def check_sync(
        self,
        video: str | Path,
        audio: str | Path | None = None,
        *,
        max_offset: float = MAX_LAG_SECONDS,
        window: float = WINDOW_SECONDS,
        options: DubOptions | None = None,
        progress: ProgressCallback | None = None,
        analysis: VideoTrack | None = None,
    ) -> SyncReport:
        """How well ``video``'s mouth follows ``audio`` (default: its own sound; another file is timed from the
        video's first frame), and the offset between picture and sound within ``max_offset`` seconds, over the
        whole video, over windows of ``window`` seconds and per person (dubber/pipeline/sync_check.py); the face
        is chosen as ``options`` choose it for a dub. ``analysis``: this video's :meth:`analyse` result, to check
        several sounds against it while tracking it once."""
        started = time.perf_counter()
        check_sync_inputs(video, audio)
        track = analysis if analysis is not None else self.analyse(video, options=options, progress=progress)
        refs = track.references_by_person(self.landmarks.config.n_refs)
        speech = self._own_features(Path(video)) if audio is None else self._audio_features(Path(audio))
        report = read_sync(
            self.landmarks,
            speech,
            track,
            track.frame_rate(),
            refs,
            video=Path(video),
            audio=None if audio is None else Path(audio),
            max_offset=max_offset,
            window=window,
        )
        report.seconds = time.perf_counter() - started
        return report

    def planned_landmarks(
        self,
        analysis: VideoTrack,
        audio: str | Path,
        landmarks: LandmarkCompleter | LandmarkEnsemble | None = None,
        *,
        spread: Spread | None = None,
    ) -> np.ndarray:
        """(frames, 131, 2) the target landmarks a dub of the analysed video with ``audio`` draws (unit crop: the
        video's pose points, lips and jaw from the audio), one per dubbed frame (the video extended by ping-pong
        where the audio is longer), the lips and jaw spread by ``spread`` (:meth:`own_speech`); for evaluation."""
        fps = analysis.frame_rate(float(self.options.fps))
        with closing(self._audio_features(Path(audio))) as streamed:
            timeline = Timeline.plan(analysis.frames, streamed.seconds, fps, "pingpong", False)
            refs = analysis.references_by_person(self.landmarks.config.n_refs)
            model, points, fill = landmarks or self.landmarks, analysis.points, analysis.filled_index()
            motion = MotionPlanner(model, streamed.features, fps, timeline, points, fill, refs, spread=spread)
            return motion.targets(0, timeline.dub_frames)

    def _completer(self, job: DubJob, track: VideoTrack) -> LandmarkCompleter | LandmarkEnsemble:
        lag = partial(self._mouth_lag, job, track)
        return completer_for_video(job, track, self.landmarks, self.runtime, self._own_features, lag)

    def _mouth_lag(self, job: DubJob, track: VideoTrack) -> int | None:
        return self._read_own_speech(job.video, track, self.landmarks, heard=job.heard).lag

    def _hear_ahead(self, job: DubJob, analysis: VideoTrack | None) -> HeardSpeech | None:
        """The video's own speech heard in a thread while the new speech's features are computed (one model on
        each core), where the dub will read it: the options ask for it, the video has sound, and its track is
        made by this dub (a given analysis may have been read before)."""
        if analysis is not None or not self.reads_own_speech or not job.opts.articulation or job.media.audio is None:
            return None
        return HeardSpeech(partial(self._own_features, job.video, max_seconds=MAX_SECONDS + 1.0))

    def _analyse(self, job: DubJob, spool: FrameSpool | None) -> VideoTrack:
        return track_faces(job, self.renderer.size, spool, self.backend_factory)

    def _articulation(
        self,
        job: DubJob,
        track: VideoTrack,
        landmarks: LandmarkCompleter | LandmarkEnsemble,
        pool: Executor | None = None,
    ) -> OwnSpeech:
        """The reading of the video's own speech the plan widens its movement by, where the options ask for it and
        the video has speech (a photo, or a video without sound, has none); ``pool``: threads an ensemble's members
        are predicted on at once."""
        if not job.opts.articulation or job.still or job.media.audio is None:
            return OwnSpeech(None, None)
        return self._read_own_speech(job.video, track, landmarks, pool, job.heard)

    def _motion(
        self,
        job: DubJob,
        track: VideoTrack,
        timeline: Timeline,
        landmarks: LandmarkCompleter | LandmarkEnsemble,
        references: LandmarkReferences,
        own: OwnSpeech,
        pool: Executor | None = None,
    ) -> MotionPlanner:
        """What gives each dubbed frame its target landmarks (``targets(start, stop)``): the completer hearing the
        new audio, widened by ``own`` (``_articulation``; evaluation draws from other targets:
        ``dubber.evaluation.truth_motion``). Its first block is planned now, an ensemble's members on ``pool``'s
        threads at once: while it is, no frame can be drawn."""
        spread = own.spread
        job.articulation_gain = 1.0 if spread is None else spread.gain
        points, fill = track.points, track.filled_index()
        motion = MotionPlanner(landmarks, job.features, job.fps, timeline, points, fill, references, spread=spread)
        motion.plan_ahead(pool)
        return motion

    def _read_own_speech(
        self,
        video: Path,
        track: VideoTrack,
        landmarks,
        pool: Executor | None = None,
        heard: HeardSpeech | None = None,
    ) -> OwnSpeech:
        model = landmarks or self.landmarks
        try:
            return self._last_reading.get(track, model, partial(self._read, Path(video), track, model, pool, heard))
        except InputError as error:  # the widening is a refinement: a video whose own audio is unreadable still dubs
            log.warning("%s: its own audio could not be read, the planned movement is not widened: %s", video, error)
            return OwnSpeech(None, None)

    def own_speech(
        self, video: str | Path, analysis: VideoTrack, landmarks: LandmarkCompleter | LandmarkEnsemble | None = None
    ) -> OwnSpeech:
        """What ``video``'s own speech, planned by ``landmarks`` (the pipeline's completer by default) and set
        against the mouth tracked on it (its :meth:`analyse` result), says: the articulation spread and the lag of
        its mouth behind its sound (dubber/pipeline/mouth_lag.py). Read once for several dubs of one analysis."""
        model = landmarks or self.landmarks
        return self._last_reading.get(analysis, model, partial(self._read, Path(video), analysis, model, None, None))

    def _read(
        self, video: Path, analysis: VideoTrack, model, pool: Executor | None, heard: HeardSpeech | None
    ) -> OwnSpeech:
        if analysis.frames == 1:
            return OwnSpeech(None, None)
        refs = analysis.references_by_person(model.config.n_refs)
        fps = analysis.frame_rate(float(self.options.fps))
        own = None if heard is None else heard.take()
        if own is None:
            own = self._own_features(video, max_seconds=MAX_SECONDS + 1.0)  # the windows' context past the end
        reading = read_own_speech(model, own, analysis, fps, refs, pool)
        if reading.spread is not None:
            log.info(
                "%s: the planned mouth movement widened %.2f times (the speaker's range)", video, reading.spread.gain
            )
        if reading.lag:
            side = "behind" if reading.lag > 0 else "ahead of"
            ms = abs(reading.lag) / fps * 1e3
            frames = f"{abs(reading.lag)} frame{'s' if abs(reading.lag) > 1 else ''}"
            log.info("%s: its picture runs %s (%.0f ms) %s its own sound", video, frames, ms, side)
        if reading.match is not None and reading.match < MIN_CORRELATION:
            log.info(
                "%s: its mouth hardly follows its own sound (%.2f): a voice-over or music? The planned movement is "
                "not widened",
                video,
                reading.match,
            )
        return reading

    def _speakers(self, job: DubJob, track: VideoTrack, landmarks, references: LandmarkReferences) -> np.ndarray | None:
        """With ``--only-speaking``, the frames of the shots whose mouths follow the video's own sound (None: every
        face, where the option is off or there is no sound to tell by)."""
        if not job.opts.speaking_only:
            return None
        if job.still or job.media.audio is None:
            log.info("%s: no sound of its own to tell speakers by: every face is dubbed", job.video)
            return None
        t0 = time.perf_counter()

        def read() -> SpeakingPeople:
            return read_speaking(landmarks, self._own_features(job.video), track, job.fps, references)

        reading = self._last_speaking.get(track, landmarks, read)
        job.speaking = reading.speaking()
        add_time(job.timings, "speaking", t0)
        for k, match in enumerate(reading.matches):
            follows = "too few frames to tell" if match is None else f"its mouth follows the sound at {match:.2f}"
            log.info("%s: person %d: %s", job.video, k, follows)
        times = track.times  # a shot from its first frame's time to its last's
        for shot in reading.shots:
            follows = "too short to tell" if shot.match is None else f"follows the sound at {shot.match:.2f}"
            dubbed = "dubbed" if reading.shot_speaks(shot) else "kept as it is (a listener)"
            span = f"{times[shot.first]:.2f}-{times[shot.stop - 1]:.2f} s"
            log.info("%s: shot at %s, person %d: %s: %s", job.video, span, shot.person, follows, dubbed)
        kept = reading.kept_shots()
        job.kept_shots = [[round(float(times[s.first]), 3), round(float(times[s.stop - 1]), 3), s.person] for s in kept]
        if not reading.anyone_follows:
            log.warning(
                "%s: no one's mouth follows the video's own sound (a voice-over, music?): every face is dubbed",
                job.video,
            )
        return redrawn_frames(track, references, reading)

    def _write(
        self,
        job: DubJob,
        track: VideoTrack,
        timeline: Timeline,
        spool: FrameSpool | None,
        landmarks: LandmarkCompleter | LandmarkEnsemble,
    ) -> DubResult:
        opts, reader, timings = job.opts, job.reader, job.timings
        t0 = time.perf_counter()
        redraw = None
        counts: dict[str, int] = {}
        if track.has_face.any():
            # The video's own speech read by the completer's members two at a time (heard here first, unless it was
            # heard ahead) while the renderer encodes the reference pool: a model on each core.
            with (
                ThreadPoolExecutor(1, thread_name_prefix="dub-own-speech", initializer=start_torch_thread) as beside,
                ThreadPoolExecutor(2, thread_name_prefix="dub-members") as members,  # each task starts its thread
            ):
                own = beside.submit(self._articulation, job, track, landmarks, members)
                refs = ReferenceSet.from_track(
                    track, self.renderer, landmarks.config.n_refs, per_frame=opts.references == "nearest"
                )
                motion = self._motion(job, track, timeline, landmarks, refs.landmark_sets, own.result(), members)
            add_time(timings, "landmarks", t0)
            redrawn = self._speakers(job, track, landmarks, refs.landmark_sets)  # timed as "speaking"
            redraw = FaceRedrawer(self.renderer, track, timeline, motion, refs, opts, timings, counts, redrawn)
        else:
            add_time(timings, "landmarks", t0)
        width, height = reader.size
        job.batch_size = opts.batch_size or auto_batch_size(self.device, reader.size)
        job.render_workers = render_workers(self.device, self.runtime) if opts.overlap else 1
        job.clock.lap("plan")
        faces = encode_dub(job, timeline, spool, redraw)
        job.clock.lap("dub")
        timings["total"] = time.perf_counter() - job.started
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
            network_frames=counts.get("network", 0),
            phases=phase_report(job.clock.phases),
            settings=dub_settings(self.name, self.runtime, self.renderer, job),
            dub_start=timeline.lead_frames / job.fps,
            tracks=job.streams.tracks if job.streams is not None else [],
        )
