"""A tiny prepared cache written directly, where the mouth opens with the audio's loudness: a learnable task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dubber.data.prep import write_manifest
from dubber.data.prep_clip import ClipRecord, PrepOptions
from dubber.data.sources import ClipSource
from dubber.face.aligner import canonical_face
from dubber.face.landmarks import ALL_INDICES, CONTENT_INDICES

FPS = 25.0


def _smooth_signal(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.random(n // 6 + 3)
    x = np.interp(np.arange(n) / 6.0, np.arange(len(raw)), raw)
    return np.clip((x - 0.35) * 1.6, 0.0, 1.0)  # silent stretches (0) and speech of varying loudness


def make_clip_arrays(rng: np.random.Generator, frames: int, speaker_scale: float):
    loud = _smooth_signal(rng, frames)
    times = np.arange(frames) / FPS
    steps = 1 + int(frames / FPS * 80)
    step_loud = np.interp(np.arange(steps) / 80.0, times, loud)
    mel = np.full((steps, 80), -4.0, np.float32)
    mel[:, 8:40] = (-4.0 + 7.0 * step_loud[:, None]).astype(np.float32)
    mel += rng.normal(0, 0.05, mel.shape).astype(np.float32) * (mel > -4.0)
    face = (canonical_face() - 0.5) * speaker_scale + 0.5
    pts = np.repeat(face[None], frames, 0).astype(np.float32)
    mouth_y = face[13, 1]
    lower = np.zeros(478, bool)
    lower[list(CONTENT_INDICES)] = face[list(CONTENT_INDICES), 1] > mouth_y
    pts[:, lower, 1] += (0.06 * speaker_scale * loud)[:, None]  # the jaw and lower lip drop with loudness
    pts += rng.normal(0, 0.0004, pts.shape).astype(np.float32)
    return times, mel, pts


def draw_crops(points: np.ndarray, skin: tuple[int, int, int], size: int = 128) -> np.ndarray:
    """(T, S, S, 3) uint8 synthetic aligned crops: a face of colour ``skin`` whose dark mouth polygon follows the
    inner-lip landmarks, so a renderer has something to learn (the mouth follows its landmarks, the skin its
    references)."""
    import cv2

    from dubber.face.landmarks import INNER_LIPS, OUTER_LIPS

    frames = np.zeros((len(points), size, size, 3), np.uint8)
    frames[:] = (40, 60, 90)
    for t, pts in enumerate(points):
        px = pts * size
        cv2.ellipse(frames[t], (size // 2, int(size * 0.52)), (int(size * 0.3), int(size * 0.4)), 0, 0, 360, skin, -1)
        cv2.fillPoly(frames[t], [np.round(px[list(OUTER_LIPS)]).astype(np.int32)], (150, 60, 70))
        cv2.fillPoly(frames[t], [np.round(px[list(INNER_LIPS)]).astype(np.int32)], (30, 10, 10))
        for eye in (33, 263):
            cv2.circle(frames[t], tuple(np.round(px[eye]).astype(int)), 3, (20, 20, 20), -1)
    return frames


def write_crops(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(FPS))
        stream.width = stream.height = frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode(None))


def write_speech(folder: Path, mel: np.ndarray, name: str, dims: int, rng: np.random.Generator) -> None:
    """Speech features at 50 steps/s whose first half of the dimensions follows the mel's loudness."""
    loud = (mel[:, 8].astype(np.float64) + 4.0) / 7.0
    steps = 1 + int((len(mel) - 1) / 80.0 * 50.0)
    step_loud = np.interp(np.arange(steps) / 50.0, np.arange(len(mel)) / 80.0, loud)
    feats = rng.normal(0, 0.1, (steps, dims))
    feats[:, : dims // 2] += 2.0 * step_loud[:, None]
    np.save(folder / f"speech-{name}.npy", feats.astype(np.float16))


def make_cache(
    root: Path,
    speakers: dict[str, str],
    clips_per_speaker: int = 2,
    frames: int = 75,
    seed: int = 0,
    crops: bool = False,
    speech: tuple[str, int] | None = None,
) -> Path:
    """``speakers`` maps a speaker name to its split. Returns the cache folder. ``crops`` also writes
    ``crops_128.mp4`` drawn from the landmarks, each speaker with its own skin colour. ``speech`` (features name,
    dims) also writes speech-encoder features that carry the loudness, as ``dub prep`` would store them."""
    rng = np.random.default_rng(seed)
    sources = []
    for si, (speaker, split) in enumerate(speakers.items()):
        scale = 0.9 + 0.05 * si
        for k in range(clips_per_speaker):
            clip_id = f"{speaker}_{k}"
            folder = root / "clips" / clip_id
            folder.mkdir(parents=True, exist_ok=True)
            times, mel, pts = make_clip_arrays(rng, frames, scale)
            tf = np.tile([100.0, 100.0, 200.0, 0.0], (frames, 1))
            np.savez(
                folder / "track.npz",
                times=times,
                flags=np.zeros(frames, np.uint8),
                crop_points=pts.astype(np.float16),
                frame_points=(pts[:, list(ALL_INDICES)] * 200).astype(np.float32),
                transforms=tf,
                angles=np.zeros((frames, 3), np.float32),
                mel=mel.astype(np.float16),
            )
            rec = ClipRecord(
                clip_id,
                split,
                speaker,
                f"/synthetic/{clip_id}.mp4",
                "ok",
                frames=frames,
                face_frames=frames,
                usable_frames=frames,
                fps=FPS,
                width=200,
                height=200,
                seconds=frames / FPS,
                has_audio=True,
                sizes=[128],
            )
            if speech is not None:
                write_speech(folder, mel, speech[0], speech[1], rng)
            if crops:
                skin = tuple(int(v) for v in 120 + (np.arange(3) * 37 + si * 53) % 120)
                write_crops(folder / "crops_128.mp4", draw_crops(pts, skin))
            (folder / "meta.json").write_text(json.dumps(rec.to_dict()))
            sources.append(ClipSource(clip_id, Path(rec.source), split, speaker))
    write_manifest(sources, root, PrepOptions(), 1, 0, len(sources), 0.0)
    return root
