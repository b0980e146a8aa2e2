"""Options shared by ``dub VIDEO``, ``dub batch`` and ``dub bench``, and the progress display they share."""

from __future__ import annotations

import time
from fractions import Fraction

import typer

from dubber.cli.output import frame_progress, stderr

# Typer reads these OptionInfo objects when it builds each command, so one definition serves all three commands.
WEIGHTS = typer.Option("default", "--weights", "-w", help="Weights: a name in the weights folder or a model folder.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
RUNTIME = typer.Option(
    "torch",
    "--runtime",
    help="torch, or onnx: the models run with onnxruntime (pip install 'dubber[onnx]'), from an export of `dub export "
    "onnx` given as --weights or from the weights exported once into the cache folder.",
)
DTYPE = typer.Option(
    "auto",
    "--dtype",
    help="The models' precision: auto (float16 on CUDA; bfloat16 on a CPU that has it natively, else float32), "
    "float32, float16 (CUDA) or bfloat16.",
)
STEPS = typer.Option(
    None,
    "--steps",
    min=1,
    max=1000,
    show_default=False,
    help="Denoising steps per frame. Default: the weights' own (1 for the shipped CPU-trained ones).",
)
REFERENCES = typer.Option(
    "nearest",
    "--references",
    help="Reference frames the renderer copies the face from: nearest (per frame, the speaker's frames whose mouth is "
    "nearest the target) or spread (one closed / half-open / open set for the whole video).",
)
REFERENCE_BLEND = typer.Option(
    True,
    "--reference-blend/--no-reference-blend",
    help="Keep a reference frame's real mouth where its landmarks already match the target's, and its face around "
    "the mouth (weights that carry a blend and a mouth guard, as the shipped ones do); --no-reference-blend shows "
    "the network's drawing everywhere.",
)
ADAPT = typer.Option(
    "off",
    "--adapt",
    help="Fine-tune the landmark completer on the video's own speech first: on, auto (when the video has audio and "
    '3 s of face) or off (docs/DUBBING.md "Adaptation").',
)
ADAPT_SECONDS = typer.Option(30.0, "--adapt-seconds", min=1.0, max=3600.0, help="The adaptation's time budget.")
CACHE_DIR = typer.Option(
    None,
    "--cache-dir",
    help="Where adapted models are kept (default: DUB_CACHE or the user's cache folder).",
    show_default=False,
)
SEED = typer.Option(0, "--seed", help="Seed of the one initial noise every frame shares.")
BATCH = typer.Option(
    "auto",
    "--batch-size",
    help="Frames rendered together: a number, or auto (8 on the CPU; on a GPU as many as its free memory and the "
    "host's allow, up to 64).",
)
FIT = typer.Option("pingpong", "--fit", help="Extend a video shorter than the audio: pingpong, loop or freeze.")
KEEP_REST = typer.Option(False, "--keep-rest", help="Keep the rest of a longer video (its frames and audio).")
START = typer.Option(
    "0",
    "--start",
    help="Where in the video the dub starts: seconds (83.5) or [HH:]MM:SS[.ms] (1:23.5). The video's own frames and "
    "audio play before it; with --keep-rest, after it too.",
)
FACE = typer.Option(
    "0",
    "--face",
    help="Which face to dub: 0 the largest, 1 the next, ...; or left / right: the leftmost or rightmost face (of "
    "those at least half the largest's size).",
)
PERSON = typer.Option(
    None,
    "--person",
    min=0,
    help="Dub only this person of a video cut between several (0: the one seen longest, 1: the next; `dub inspect` "
    "lists them); the others' frames stay as they are. Default: everyone.",
)
ONLY_SPEAKING = typer.Option(
    False,
    "--only-speaking",
    help="In a video cut between shots, dub only the shots whose mouths follow the video's own sound; "
    "listeners' shots (reaction shots) stay as they are.",
)
FACE_BACKEND = typer.Option(
    "mediapipe",
    "--face-backend",
    help="What finds the face: mediapipe (in the wheel), or insightface (its SCRFD detector from --face-models, "
    "MediaPipe's mesh for the landmarks; docs/DUBBING.md).",
)
FACE_MODELS = typer.Option(
    None,
    "--face-models",
    help="insightface's models: a folder holding an SCRFD detector such as det_10g.onnx (default: DUB_FACE_MODELS).",
    show_default=False,
)
FPS = typer.Option(25.0, "--fps", min=1.0, max=240.0, help="Frame rate of the video made from a still image.")
KEEP_ORIGINAL = typer.Option(
    False, "--keep-original-audio", help="Keep the source's audio tracks after the new one (marked as a dub)."
)
LANGUAGE = typer.Option(
    None,
    "--language",
    help="The new speech's language, a three-letter ISO 639-2 code (spa, fra, deu...) its audio track (and "
    "--subtitles) are tagged with. Default: the audio file's own tag, where it has one.",
    show_default=False,
)
SOURCE_SUBTITLES = typer.Option(
    True,
    "--source-subtitles/--no-source-subtitles",
    help="Carry the source's subtitle tracks into the output (text ones converted to what its container holds).",
)
CRF = typer.Option(
    18, "--crf", min=0, max=51, help="Encoder quality, x264's (VP9's in .webm; lower: better and bigger)."
)
PRESET = typer.Option(
    "medium", "--preset", help="x264 preset: ultrafast ... veryslow (a VP9 speed of about the same pace in .webm)."
)
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output file.")
SOURCE_DETAIL = typer.Option(
    True,
    "--source-detail/--no-source-detail",
    help="On faces larger than the drawing, add the video's own fine detail: the frame's where the drawing agrees "
    "with it, the hinting reference frame's where the mouth changed.",
)
ARTICULATION = typer.Option(
    True,
    "--articulation/--no-articulation",
    help="Widen the planned mouth movement to the speaker's own range, read from the video's own speech (up to 1.5 "
    'times; docs/DUBBING.md "Articulation").',
)
OVERLAP = typer.Option(
    True,
    "--overlap/--no-overlap",
    help="Decode, run the models and encode at once, in threads (the same output bytes either way).",
)
JSON_OUT = typer.Option(False, "--json", help="Print the result as JSON on stdout.")


def parse_batch_size(value: str | int | None) -> int | None:
    """``--batch-size``: a whole number of frames, or "auto" (None: the pipeline chooses for its device)."""
    from dubber.errors import InputError

    text = str(value if value is not None else "auto").strip().lower()
    if text == "auto":
        return None
    try:
        number = int(text)
    except ValueError:
        raise InputError(None, f"--batch-size {value!r}: give a whole number of frames or auto") from None
    if number < 1:
        raise InputError(None, f"--batch-size {number}: at least 1 frame")
    return number


def parse_start(value: str | float | None) -> float:
    """``--start``: seconds, or [HH:]MM:SS[.fraction], as a number of seconds (an InputError when it is neither)."""
    from dubber.errors import InputError
    from dubber.pipeline.timeline import parse_time

    try:
        return parse_time(str(value if value is not None else "0"))
    except ValueError:
        raise InputError(None, f"--start {value!r}: give seconds (83.5) or [HH:]MM:SS[.ms] (1:23.5)") from None


def parse_face(value: str | int) -> tuple[int, str | None]:
    """``--face``: (face index, side): "2" -> (2, None), "left" -> (0, "left")."""
    from dubber.errors import InputError
    from dubber.face.tracker import FACE_SIDES

    text = str(value).strip().lower()
    if text in FACE_SIDES:
        return 0, text
    if not text.isdigit():
        raise InputError(None, f"--face {value!r}: give 0, 1, 2, ... (0 the largest face), left or right")
    return int(text), None


def dub_options(
    *,
    steps,
    seed,
    batch_size,
    fit,
    keep_rest,
    face,
    fps,
    keep_original_audio,
    crf,
    preset,
    overwrite,
    references="nearest",
    reference_blend=True,
    adapt="off",
    adapt_seconds=30.0,
    cache_dir=None,
    face_backend="mediapipe",
    face_models=None,
    overlap=True,
    source_detail=True,
    articulation=True,
    start=0.0,
    person=None,
    only_speaking=False,
    language=None,
    source_subtitles=True,
):
    from dubber.pipeline.options import DubOptions

    face_index, face_side = parse_face(face)
    return DubOptions(
        steps=steps,
        seed=seed,
        batch_size=parse_batch_size(batch_size),
        fit=fit,
        keep_rest=keep_rest,
        start=parse_start(start),
        face_index=face_index,
        face_side=face_side,
        person=person,
        speaking_only=only_speaking,
        fps=Fraction(fps).limit_denominator(1001),
        keep_original_audio=keep_original_audio,
        language=language,
        source_subtitles=source_subtitles,
        crf=crf,
        preset=preset,
        overwrite=overwrite,
        references=references,
        reference_blend=reference_blend,
        adapt=adapt,
        adapt_seconds=adapt_seconds,
        cache_dir=None if cache_dir is None else str(cache_dir),
        face_backend=face_backend,
        face_models=None if face_models is None else str(face_models),
        overlap=overlap,
        source_detail=source_detail,
        articulation=articulation,
    )


def load_pipeline(weights: str, device: str, dtype: str, options, runtime: str = "torch"):
    from dubber.pipeline.dubbing import DubbingPipeline

    return DubbingPipeline.from_pretrained(weights, device=device, dtype=dtype, options=options, runtime=runtime)


def threads_for(pipe) -> None:
    """On the CPU, torch's threads follow the cores free now (``dubber.cpu_threads``), one left to decoding and
    encoding when the dub's stages overlap."""
    if pipe.device.type == "cpu":
        from dubber.cpu_threads import use_free_cores

        use_free_cores(reserve=1 if pipe.options.overlap else 0)


class DubProgress:
    """A rich bar per pass on stderr, with frames/s; silent when stderr is not a terminal."""

    LABELS = {"analyse": "tracking faces", "dub": "dubbing"}

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.bar = frame_progress(name, enabled)
        self.tasks: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def __enter__(self) -> DubProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            label = f"{self.name}: {self.LABELS.get(stage, stage)}"
            self.tasks[stage] = self.bar.add_task(label, total=total or None, rate="")
            self.started[stage] = time.perf_counter()
        rate = done / max(time.perf_counter() - self.started[stage], 1e-9)
        self.bar.update(self.tasks[stage], completed=done, total=total or None, rate=f"{rate:.1f} frames/s")


def summary_line(result) -> str:
    t = result.timings
    dubbed = ""
    if result.dubbed_frames < result.frames:  # the video's own frames before or after the dub
        end = result.dub_start + result.dubbed_frames / result.fps
        dubbed = f"; the new speech from {result.dub_start:.2f} to {end:.2f} s"
    tracks = ""
    if len(result.tracks) > 1 or any(track["language"] for track in result.tracks):  # what a player will list
        tracks = "; tracks: " + ", ".join(f"{track['type']} {track['language'] or 'und'}" for track in result.tracks)
    return (
        f"{result.output}: {result.frames} frames ({result.seconds:.2f} s at {result.fps:g} fps{dubbed}), "
        f"{result.face_frames} with the mouth redrawn, {result.frames_per_second:.2f} frames/s "
        f"(render {t.get('render', 0):.1f} s of {t.get('total', 0):.1f} s){tracks}"
    )


def show_result(result, json_out: bool) -> None:
    from dubber.cli.output import is_quiet, print_json

    if json_out:
        print_json(result.to_dict())
    elif not is_quiet():
        stderr.print(summary_line(result), soft_wrap=True)
