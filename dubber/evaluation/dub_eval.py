"""``dub eval``: the full pipeline on held-out clips, two protocols, baselines in the same run
(docs/ARCHITECTURE.md §9).

- reconstruction: each clip dubbed with its own audio and compared with the original (image, landmark, seam
  metrics, dubber/evaluation/dub_metrics.py). Baselines: the untouched video (the exact floor: PSNR capped at 100 dB,
  SSIM 1, LMD 0) and the static mouth (the same pipeline, the resting reference's lower face pasted back).
- cross-dubbing: each clip dubbed with the next clip's audio from another speaker: the mouth opening found on the
  output against the speech activity of the new audio, jitter, seam.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dubber.data.sources import ClipSource
from dubber.evaluation.dub_metrics import ImageScores, landmark_scores, screen_points, speech_activity
from dubber.evaluation.image_metrics import PSNR_CAP
from dubber.evaluation.metrics import correlation
from dubber.evaluation.redub import static_pipeline
from dubber.media.audio import decode_audio, write_wav
from dubber.media.video_reader import VideoReader
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.dubbing import DubbingPipeline
from dubber.pipeline.face_pass import track_video

METHODS = ("dub", "static_mouth", "untouched")


@dataclass
class ClipReport:
    clip: str
    speaker: str
    split: str
    frames: int
    reconstruction: dict[str, dict] = field(default_factory=dict)  # method -> metrics
    cross: dict = field(default_factory=dict)
    seconds: float = 0.0
    pictures: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def score_outputs(
    original: Path, truth: VideoTrack, outputs: dict[str, Path], size: int, *, ssim_every: int = 5
) -> tuple[dict[str, dict], dict[str, VideoTrack]]:
    """Metrics of each output video against ``original`` (tracked as ``truth``), and of the untouched baseline:
    ``original`` against itself, through the same landmark path, so its numbers are the exact floor."""
    truth_points = screen_points(truth.points, truth.transforms, truth.aspect)
    tracks = {name: track_video(path, size) for name, path in outputs.items()}
    scores = {name: ImageScores() for name in outputs}
    readers = {name: iter(VideoReader(path)) for name, path in outputs.items()}
    for i, frame in enumerate(VideoReader(original)):
        tf = truth.transforms[i] if i < truth.frames else None
        for name in outputs:
            out = next(readers[name], None)
            if out is not None:
                scores[name].add(out.image, frame.image, tf, full_ssim=i % ssim_every == 0, aspect=truth.aspect)
    result = {}
    for name in outputs:
        t = tracks[name]
        found = screen_points(t.points, t.transforms, t.aspect)
        result[name] = {**scores[name].result(), **landmark_scores(found, truth_points, t.opening, truth.opening)}
        if name == "cross":
            result[name] = {k: result[name][k] for k in ("seam", "jitter", "face_lost")}
    result["untouched"] = {
        "psnr_lower": PSNR_CAP,
        "psnr_frame": PSNR_CAP,
        "ssim_lower": 1.0,
        "ssim_frame": 1.0,
        "seam": 1.0,
        **landmark_scores(truth_points, truth_points, truth.opening, truth.opening),
    }
    return result, tracks


def speech_following(output: Path, audio: Path, size: int) -> float | None:
    """Correlation of the mouth opening found on ``output`` with the speech activity of ``audio`` over time."""
    t = track_video(output, size)
    speech = decode_audio(audio)
    return correlation(t.opening, speech_activity(speech.mono, speech.sample_rate, t.times))


def pick_cross_audio(clips: list[ClipSource]) -> dict[str, ClipSource]:
    """For clip ``i``, the ``i``-th (cyclically) of the clips of other speakers: voices rotate over the set."""
    out = {}
    for i, c in enumerate(clips):
        others = [o for o in clips if o.speaker != c.speaker]
        if others:
            out[c.clip_id] = others[i % len(others)]
    return out


def trimmed_speech(source: Path, seconds: float, dest: Path) -> Path:
    """The first ``seconds`` of ``source``'s audio as a 16 kHz WAV: a cross-dub as long as the clip itself, so it
    scores the same frames and needs no extension."""
    clip = decode_audio(source)
    write_wav(dest, clip.mono[: int(round(seconds * clip.sample_rate))], clip.sample_rate)
    return dest


def evaluate_clip(
    pipe: DubbingPipeline, clip: ClipSource, cross_audio: ClipSource | None, folder: Path, pictures=None
) -> ClipReport:
    started = time.perf_counter()
    size = pipe.renderer.size
    report = ClipReport(clip.clip_id, clip.speaker, clip.split, 0)
    with tempfile.TemporaryDirectory(prefix="dub-eval-") as tmp:
        outputs = {"dub": Path(tmp) / "dub.mp4", "static_mouth": Path(tmp) / "static.mp4"}
        truth = pipe.analyse(clip.path)  # tracked once: the three dubs and the scores share it
        result = pipe(clip.path, clip.path, outputs["dub"], overwrite=True, analysis=truth)
        static_pipeline(pipe)(clip.path, clip.path, outputs["static_mouth"], overwrite=True, analysis=truth)
        if cross_audio is not None:
            outputs["cross"] = Path(tmp) / "cross.mp4"
            voice = trimmed_speech(cross_audio.path, result.seconds, Path(tmp) / "voice.wav")
            pipe(clip.path, voice, outputs["cross"], overwrite=True, analysis=truth)
        report.frames = result.frames
        scores, tracks = score_outputs(clip.path, truth, outputs, size)
        if cross_audio is not None:
            cross = scores.pop("cross")
            report.cross = {
                "audio_from": cross_audio.clip_id,
                "opening_vs_speech": speech_following(outputs["cross"], voice, size),
                **cross,
            }
        report.reconstruction = scores
        if pictures is not None:
            report.pictures = pictures(clip, truth, outputs["dub"], tracks["dub"], folder)
    report.seconds = time.perf_counter() - started
    return report


def run_eval(
    pipe: DubbingPipeline,
    clips: list[ClipSource],
    out: Path,
    *,
    cross: bool = True,
    pictures=None,
    progress: Callable[[int, int, ClipReport], None] | None = None,
) -> list[ClipReport]:
    partners = pick_cross_audio(clips) if cross else {}
    return score_each(
        clips,
        lambda clip: evaluate_clip(pipe, clip, partners.get(clip.clip_id), out, pictures),
        lambda clip, error: ClipReport(clip.clip_id, clip.speaker, clip.split, 0, error=error),
        progress,
    )


def score_each(clips: list[ClipSource], evaluate: Callable, failed: Callable, progress: Callable | None) -> list:
    """``evaluate(clip)`` for each clip in turn; a clip that raises gets ``failed(clip, message)`` and the others
    are still scored. ``progress(done, total, report)`` after each."""
    reports = []
    for n, clip in enumerate(clips, 1):
        try:
            r = evaluate(clip)
        except Exception as exc:  # noqa: BLE001 - one broken clip is reported, the others are still scored
            r = failed(clip, f"{type(exc).__name__}: {exc}")
        reports.append(r)
        if progress is not None:
            progress(n, len(clips), r)
    return reports
