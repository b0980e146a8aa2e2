"""What a dub can be asked to do (``DubOptions``), what it reports (``DubResult``), and device/dtype choice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path

from dubber.errors import InputError
from dubber.face.backends import FACE_BACKENDS
from dubber.face.tracker import FACE_SIDES
from dubber.media.encode_options import X264_PRESETS
from dubber.media.stream_tags import language_code
from dubber.pipeline.timeline import FIT_MODES

DTYPES = ("auto", "float32", "float16", "bfloat16")
ADAPT_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class DubOptions:
    steps: int | None = None  # denoising steps per frame; None: the weights' own (renderer.json "steps")
    seed: int = 0  # one initial noise for every frame of the video
    guidance: float = 1.0  # classifier-free guidance on the landmarks (1 = off, one model call per step)
    scheduler: str | None = None  # "ddim" or "dpm++"; None: the weights' own
    batch_size: int | None = None  # frames rendered together; None: chosen for the device (auto_batch.py)
    fit: str = "pingpong"  # how a video shorter than the audio is extended
    keep_rest: bool = False  # a video longer than the audio goes on with its own frames and audio
    start: float = 0.0  # seconds into the video where the dub starts: its own frames and audio before
    face_index: int = 0  # which face to dub: 0 the largest
    face_side: str | None = None  # ... or "left" / "right": the leftmost or rightmost face (face_index then 0)
    # Whose frames to redraw, of the people pass 1 tells apart (0: the person seen longest; None: everyone's); the
    # others' frames are kept as they are.
    person: int | None = None
    # Redraw only the shots whose mouths follow the video's own sound (pipeline/speaking_people.py)
    speaking_only: bool = False
    fps: Fraction = Fraction(25)  # output rate for a still image
    keep_original_audio: bool = False  # the source's audio as a second track
    # The new audio track's language (ISO 639-2: "spa"); None: the audio file's own tag, where it has one.
    language: str | None = None
    source_subtitles: bool = True  # the source's subtitle tracks carried into the output
    crf: int = 18
    preset: str = "medium"
    overwrite: bool = False
    colour_match: bool = True
    source_detail: bool = True  # the frame's own fine detail kept where the drawing agrees with it (compositor.py)
    references: str = "nearest"  # renderer references per frame: "nearest" mouth shapes, or one "spread" set
    reference_blend: bool = True  # keep a reference's real mouth where it matches (if the weights carry a blend)
    # Spread the planned lips and jaw to the speaker's own range, measured on the video's own speech
    # (dubber/pipeline/articulation.py).
    articulation: bool = True
    adapt: str = "off"  # fine-tune the landmark completer on the video's own speech first: "auto", "on" or "off"
    adapt_seconds: float = 30.0  # its time budget
    cache_dir: str | None = None  # where adapted models are kept (None: DUB_CACHE or the user's cache folder)
    face_backend: str = "mediapipe"  # what finds the face: "mediapipe" or "insightface" (dubber.face.backends)
    face_models: str | None = None  # insightface: the folder (or .onnx) of its detector; None: DUB_FACE_MODELS
    # Decoding, the models and encoding run at once in threads (dubber.pipeline.overlap); False runs them one
    # after another, with the same output bytes.
    overlap: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.steps is not None and self.steps < 1:
            problems.append(f"steps={self.steps} must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be at least 1")
        if self.fit not in FIT_MODES:
            problems.append(f"fit={self.fit!r} is not one of {', '.join(FIT_MODES)}")
        if not 0 <= self.start < float("inf"):
            problems.append(f"start={self.start} must be 0 or more seconds")
        if self.face_index < 0:
            problems.append(f"face={self.face_index} must be 0 or more")
        if self.face_side not in (None, *FACE_SIDES):
            problems.append(f"face={self.face_side!r} is not a number, left or right")
        elif self.face_side is not None and self.face_index:
            problems.append("face_index and face_side choose the face two ways: give one")
        if self.person is not None and self.person < 0:
            problems.append(f"person={self.person} must be 0 or more")
        if self.person is not None and self.speaking_only:
            problems.append("person and speaking_only choose whom to dub two ways: give one")
        if not 0 < float(self.fps) <= 240:
            problems.append(f"fps={self.fps} must be in (0, 240]")
        if not 0 <= self.crf <= 51:
            problems.append(f"crf={self.crf} is outside 0..51")
        if self.preset not in X264_PRESETS:
            problems.append(f"preset={self.preset!r} is not one of {', '.join(X264_PRESETS)}")
        if self.scheduler not in (None, "ddim", "dpm++"):
            problems.append(f"scheduler={self.scheduler!r} is not one of ddim, dpm++")
        if self.references not in ("nearest", "spread"):
            problems.append(f"references={self.references!r} is not one of nearest, spread")
        if self.face_backend not in FACE_BACKENDS:
            problems.append(f"face_backend={self.face_backend!r} is not one of {', '.join(FACE_BACKENDS)}")
        elif self.face_backend == "insightface":  # a missing model folder is said before any video is read
            from dubber.errors import FaceBackendError
            from dubber.face.insightface_backend import detector_files

            try:
                detector_files(self.face_models)
            except FaceBackendError as exc:
                problems.append(str(exc))
        if self.language is not None:
            try:
                object.__setattr__(self, "language", language_code(self.language))
            except ValueError as exc:
                problems.append(str(exc))
        if self.adapt not in ADAPT_MODES:
            problems.append(f"adapt={self.adapt!r} is not one of {', '.join(ADAPT_MODES)}")
        if not 0 < self.adapt_seconds <= 3600:
            problems.append(f"adapt_seconds={self.adapt_seconds} must be in (0, 3600]")
        if problems:
            raise InputError(None, "; ".join(problems))

    def updated(self, **changes) -> DubOptions:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown dub option(s): {', '.join(unknown)}")
        if "fps" in changes and changes["fps"] is not None:
            changes["fps"] = Fraction(changes["fps"]).limit_denominator(1001)
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class DubResult:
    output: Path
    frames: int  # frames written
    dubbed_frames: int  # frames whose timing follows the new audio
    face_frames: int  # frames whose mouth was redrawn
    seconds: float  # duration of the output video
    fps: float
    width: int
    height: int
    source_frames: int
    still_image: bool
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage and "total"
    # Of the face frames, those the renderer network drew; the reference blend gave the others to the warped hint.
    network_frames: int = 0
    # Per phase (audio, analyse, plan, dub, one after another) its wall seconds and the cores it kept busy.
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # what made the frames: weights, steps, seed, references, ...
    dub_start: float = 0.0  # seconds into the output where the new audio starts (``start``, on a frame)
    # The output's audio and subtitle tracks in order: {"type", "language", "from": "audio" | "video" | "subtitles"}
    tracks: list[dict] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        """End-to-end processing speed (output frames per second of wall time)."""
        total = self.timings.get("total", 0.0)
        return self.frames / total if total > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["output"] = str(self.output)
        d["frames_per_second"] = round(self.frames_per_second, 3)
        d["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return d


def resolve_device(device: str = "auto") -> str:
    import torch

    d = (device or "auto").strip().lower()
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d == "cpu":
        return d
    if d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit()):
        if not torch.cuda.is_available():
            raise InputError(None, f"--device {device}: this torch build has no CUDA device (use cpu or auto)")
        index = int(d[5:]) if ":" in d else 0
        if index >= torch.cuda.device_count():
            raise InputError(None, f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
        return d
    raise InputError(None, f"--device {device!r}: use auto, cpu, cuda or cuda:N")


def native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), where torch runs it faster than float32;
    elsewhere it is emulated, and slower."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without these probes
        return False


def resolve_dtype(dtype: str, device: str):
    """The models' precision by default: float16 on CUDA; on the CPU bfloat16 where the CPU has it natively
    (the dub of a real 720p clip ran at 16.5 frames/s against 12.8 in float32, docs/DUBBING.md), else float32.

    Refused with an InputError: float16 on the CPU (torch runs it over ten times slower than float32 there: 0.8
    frames/s on the demo; bfloat16 is the CPU's half precision) and bfloat16 on a GPU without it.
    """
    import torch

    if dtype not in DTYPES:
        raise InputError(None, f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    cuda = device.startswith("cuda")
    if dtype == "auto":
        if cuda:
            return torch.float16
        return torch.bfloat16 if native_bfloat16() else torch.float32
    if dtype == "float16" and not cuda:
        raise InputError(
            None, "--dtype float16 is not served on the CPU (far slower than float32 there): use bfloat16 or float32"
        )
    if dtype == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
        raise InputError(
            None, f"--dtype bfloat16: {torch.cuda.get_device_name(device)} has no bfloat16; use float16 or float32"
        )
    return getattr(torch, dtype)
