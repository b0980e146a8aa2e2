"""``dub eval --protocol split``: a cross-dub whose truth is known (docs/ARCHITECTURE.md §9).

Each clip is cut in two halves of h frames. The dub's input is the first half (with its own audio track); the speech
dubbed onto it is the second half's. Dubbed frame i should then show the mouth of original frame h + i, while its
pose and identity stay frame i's. Nothing the tool learns or picks from its input (adaptation, reference frames)
sees the second half: the input file holds only the first.

Scored against the second half's tracked mouth (MediaPipe on the output, as ``dub eval`` does):
- opening correlation: the output's mouth opening (inner-lip gap / width) against the truth's, over time;
- lip-shape LMD: the 40 lip points about their own centre, over each frame's inter-ocular distance (pose and head
  position cancel out, the mouth's shape stays);
- articulation: the std of the output's opening over the std of the truth's (1: as much motion as the speaker);
- sharpness: variance of the Laplacian in the mouth box, output frame over the source frame it was drawn on;
- seam: gradient energy across the redrawn region's border, output over source (1: no edge added).
Also the landmarks the completer planned (before rendering): their opening's correlation with the truth, and the
dub's opening's correlation with theirs (how closely the rendering follows its plan; also for the syllable-rate
movement alone, ``fast_part``), so a gap says whether the landmarks or the rendering lose the sync; and the first
half drawn from the second half's tracked lips and jaw ("true_landmarks", ``dubber.evaluation.truth_motion``): what
the rendering and the measure allow a perfect plan.
Baselines in the same run: the static mouth and "no dub" (the untouched first half, scored the same way: what
chance alone gives). The truth carries the recording's own offset between picture and sound, which a dub of the
speech cannot show: the mouth's lag behind its sound is read on the first half (``dubber.pipeline.mouth_lag``), and
the dubs driven by the speech are also scored at that lag ("opening_correlation_at_lag").
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dubber.data.clip_arrays import content_opening
from dubber.data.sources import ClipSource
from dubber.evaluation.dub_eval import score_each
from dubber.evaluation.dub_metrics import face_regions, frame_points, gradient_energy, screen_points
from dubber.evaluation.metrics import correlation
from dubber.evaluation.truth_motion import TruthLandmarksPipeline
from dubber.face.landmarks import ALL_INDICES, LEFT_EYE_OUTER, LIP_INDICES, N_POSE, RIGHT_EYE_OUTER
from dubber.media.audio import decode_audio, write_wav
from dubber.media.audio_feed import own_sound
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter
from dubber.pipeline.analysis import VideoTrack
from dubber.pipeline.dubbing import DubbingPipeline
from dubber.pipeline.mouth_lag import lag_from_openings, lined_up

_LIPS = np.asarray([ALL_INDICES.index(i) for i in LIP_INDICES])
_EYES = (ALL_INDICES.index(RIGHT_EYE_OUTER), ALL_INDICES.index(LEFT_EYE_OUTER))
_CHEEKS = (ALL_INDICES.index(234), ALL_INDICES.index(454))  # the face oval's sides at the eyes' height
MIN_HALF_FRAMES = 10  # a half shorter than this has no opening worth correlating
FAST_SECONDS = 0.28  # the moving mean a syllable-rate movement is measured about (about two syllables)


@dataclass
class SplitClipReport:
    clip: str
    speaker: str
    split: str
    frames: int  # h: frames in each half
    methods: dict[str, dict] = field(default_factory=dict)  # method -> metrics
    planned_opening_correlation: float | None = None  # the completer's own landmarks against the truth
    follows_plan: float | None = None  # the dub's opening against the planned landmarks' (the rendering's fidelity)
    follows_plan_fast: float | None = None  # the same for their syllable-rate parts (``fast_part``)
    planned_articulation: float | None = None  # the std of the planned opening over the truth's
    planned_opening_correlation_at_lag: float | None = None  # the same at ``mouth_lag``
    mouth_lag: int | None = None  # frames the first half's mouth follows its own sound (None: not timed)
    # How well the first half's mouth follows its own sound at all (the plan of it against the tracked opening, at the
    # best shift): a clip whose sound is not its face's (a voice-over) cannot score sync.
    own_speech_match: float | None = None
    truth_lag: int | None = None  # the same read between the plan and the truth: a check of mouth_lag, not a score
    face_width: float | None = None  # median width of the face (cheek to cheek) in frame pixels, first half
    seconds: float = 0.0
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def cut_halves(clip: Path, folder: Path, half: int) -> tuple[Path, Path]:
    """(the first ``half`` frames as a video with their own audio, the next ``half`` frames' speech as a WAV)."""
    reader = VideoReader(clip)
    fps = float(reader.fps)
    first = folder / "first_half.mp4"
    audio = own_sound(clip, duration=half / fps) if reader.media.audio is not None else None
    width, height = reader.size
    options = VideoEncodeOptions(crf=12, preset="veryfast")  # the input a user would have: visually lossless
    with VideoWriter(
        first,
        width=width,
        height=height,
        fps=reader.fps,
        time_base=reader.info.time_base,
        options=options,
        audio=audio,
        sample_aspect=reader.info.sample_aspect,  # an anamorphic clip's half is anamorphic too
    ) as writer:
        for frame in reader:
            if frame.index >= half:
                break
            writer.write(frame.image)
    return first, second_half_speech(clip, half, fps, folder / "second_half_speech.wav")


def second_half_speech(clip: Path, half: int, fps: float, path: Path) -> Path:
    """The speech of frames ``half`` to ``2 half`` of ``clip`` (at ``fps``) as a WAV at ``path``."""
    sound = decode_audio(clip)
    rate = sound.sample_rate
    write_wav(path, sound.mono[int(round(half / fps * rate)) : int(round(2 * half / fps * rate))], rate)
    return path


def lip_shape(points: np.ndarray) -> np.ndarray:
    """(N, 131, 2) on-screen points (``screen_points``) -> (N, 40, 2) lip points about their centre, in
    inter-ocular units."""
    lips = points[:, _LIPS]
    io = np.linalg.norm(points[:, _EYES[1]] - points[:, _EYES[0]], axis=-1)
    return (lips - lips.mean(axis=1, keepdims=True)) / np.maximum(io, 1e-6)[:, None, None]


def mouth_sharpness(image: np.ndarray, points: np.ndarray) -> float | None:
    """Variance of the Laplacian of the grey mouth box (the lip points' box, 30% wider each way)."""
    if not np.isfinite(points).all():
        return None
    lips = points[_LIPS]
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    mx, my = 0.3 * (x1 - x0), 0.3 * (y1 - y0) + 0.15 * (x1 - x0)
    h, w = image.shape[:2]
    box = image[max(0, int(y0 - my)) : min(h, int(y1 + my) + 1), max(0, int(x0 - mx)) : min(w, int(x1 + mx) + 1)]
    if box.size == 0 or min(box.shape[:2]) < 3:
        return None
    return float(cv2.Laplacian(cv2.cvtColor(box, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def std_ratio(values: np.ndarray, truth: np.ndarray) -> float | None:
    """The std of ``values`` over the std of ``truth``, on the frames where both are known (articulation)."""
    both = np.isfinite(values) & np.isfinite(truth)
    true_std = float(np.std(truth[both])) if both.sum() > 1 else 0.0
    return float(np.std(values[both]) / true_std) if true_std > 0 else None


def score_half(
    output: VideoTrack, output_path: Path, source: VideoTrack, source_path: Path, truth: dict, lag: int = 0
) -> dict:
    """One output (frames i < h) against the truth (the second half's mouth, ``truth``; its points on screen), and
    against the source frames it was drawn on for sharpness and seam; ``lag``: the recording's lag of the mouth
    behind its sound, at which an output timed by the speech is scored too."""
    n = min(output.frames, len(truth["opening"]))
    found = screen_points(output.points[:n], output.transforms[:n], output.aspect)
    src_points = frame_points(source.points[:n], source.transforms[:n], source.aspect)  # the mouth boxes
    ok = np.isfinite(found).all(axis=(1, 2)) & np.isfinite(truth["points"][:n]).all(axis=(1, 2))
    shape_error = np.linalg.norm(lip_shape(found[ok]) - lip_shape(truth["points"][:n][ok]), axis=-1).mean(-1)
    opening, true_opening = output.opening[:n], truth["opening"][:n]
    sharp, seams = [], []
    for i, (out_frame, src_frame) in enumerate(zip(VideoReader(output_path), VideoReader(source_path), strict=False)):
        if i >= n:
            break
        a, b = mouth_sharpness(out_frame.image, src_points[i]), mouth_sharpness(src_frame.image, src_points[i])
        if a is not None and b:
            sharp.append(a / b)
        tf = source.transforms[i]
        if np.isfinite(tf).all():
            _, ring = face_regions(tf, src_frame.image.shape[:2], aspect=source.aspect)
            reference = gradient_energy(src_frame.image, ring)
            if reference > 0:
                seams.append(gradient_energy(out_frame.image, ring) / reference)
    return {
        "opening_correlation": correlation(opening, true_opening),
        "opening_correlation_at_lag": correlation(*lined_up(opening, true_opening, lag)),
        "lip_shape_lmd": float(shape_error.mean()) if len(shape_error) else None,
        "articulation": std_ratio(opening, true_opening),
        "sharpness": float(np.median(sharp)) if sharp else None,
        "seam": float(np.mean(seams)) if seams else None,
        "frames": int(n),
    }


def fast_part(opening: np.ndarray, fps: float, seconds: float = FAST_SECONDS) -> np.ndarray:
    """``opening`` less its moving mean over ``seconds``: the syllable-rate movement without the phrase-level
    rise and fall (NaN where ``opening`` is)."""
    width = max(3, int(round(seconds * fps)) | 1)
    known = np.isfinite(opening)
    values = np.where(known, opening, 0.0).astype(np.float64)
    kernel = np.ones(width)
    count = np.convolve(known.astype(np.float64), kernel, mode="same")
    mean = np.convolve(values, kernel, mode="same") / np.maximum(count, 1.0)
    return np.where(known, opening - mean, np.nan)


def face_width(track: VideoTrack) -> float | None:
    """Median cheek-to-cheek width of the tracked face in frame pixels, on screen (None without a face)."""
    pts = screen_points(track.points, track.transforms, track.aspect)[:, _CHEEKS]
    width = np.linalg.norm(pts[:, 0] - pts[:, 1], axis=-1)
    width = width[np.isfinite(width)]
    return float(np.median(width)) if len(width) else None


def evaluate_split_clip(pipe: DubbingPipeline, clip: ClipSource, *, static: DubbingPipeline) -> SplitClipReport:
    started = time.perf_counter()
    report = SplitClipReport(clip.clip_id, clip.speaker, clip.split, 0)
    with tempfile.TemporaryDirectory(prefix="dub-split-") as tmp:
        folder = Path(tmp)
        whole = pipe.analyse(clip.path)
        half = whole.frames // 2  # frames decoded, not declared: containers over-declare
        report.frames = half
        if half < MIN_HALF_FRAMES:
            report.error = f"too short: {half} frames in each half"
            return report
        first, speech = cut_halves(clip.path, folder, half)
        truth = {
            "opening": whole.opening[half : 2 * half],
            "points": screen_points(whole.points[half : 2 * half], whole.transforms[half : 2 * half], whole.aspect),
        }
        source = pipe.analyse(first)  # what the dub sees: the first half alone
        report.face_width = face_width(source)
        own = pipe.own_speech(first, source)  # the dub reads it too, once: the pipeline keeps the last reading
        lag = own.lag or 0
        report.mouth_lag = own.lag
        report.own_speech_match = own.match
        landmarks = pipe.landmarks
        dubs = {"dub": pipe}
        if pipe.options.adapt != "off":  # adapted once, to the first half; the dub and its plan use that model
            landmarks = pipe.adapt(first, source)
            dubs = {"dub": pipe.with_landmarks(landmarks), "no_adapt": pipe.with_landmarks(pipe.landmarks)}
        dubs["true_landmarks"] = TruthLandmarksPipeline(pipe, whole.points[half : 2 * half])
        dubs["static_mouth"] = static
        outputs = {}
        for name, dubber in dubs.items():
            path = folder / f"{name}.mp4"
            dubber(first, speech, path, overwrite=True, analysis=source)
            outputs[name] = pipe.analyse(path)
            timed_by_speech = name in ("dub", "no_adapt")
            report.methods[name] = score_half(outputs[name], path, source, first, truth, lag if timed_by_speech else 0)
        report.methods["no_dub"] = score_half(source, first, source, first, truth)
        spread = pipe.own_speech(first, source, landmarks).spread if pipe.options.articulation else None
        planned = content_opening(pipe.planned_landmarks(source, speech, landmarks, spread=spread)[:, N_POSE:])
        n = min(len(planned), half, outputs["dub"].frames)
        report.planned_opening_correlation = correlation(planned[:n], truth["opening"][:n])
        report.planned_opening_correlation_at_lag = correlation(*lined_up(planned[:n], truth["opening"][:n], lag))
        fps = source.frame_rate()
        report.truth_lag = lag_from_openings(planned[:n], truth["opening"][:n], fps)
        report.follows_plan = correlation(outputs["dub"].opening[:n], planned[:n])
        report.follows_plan_fast = correlation(fast_part(outputs["dub"].opening[:n], fps), fast_part(planned[:n], fps))
        report.planned_articulation = std_ratio(planned[:n], truth["opening"][:n])
    report.seconds = time.perf_counter() - started
    return report


def run_split_eval(pipe: DubbingPipeline, clips: list[ClipSource], *, progress=None) -> list[SplitClipReport]:
    from dubber.evaluation.redub import static_pipeline

    static = static_pipeline(pipe)
    return score_each(
        clips,
        lambda clip: evaluate_split_clip(pipe, clip, static=static),
        lambda clip, error: SplitClipReport(clip.clip_id, clip.speaker, clip.split, 0, error=error),
        progress,
    )
