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


def make_cache(
    root: Path, speakers: dict[str, str], clips_per_speaker: int = 2, frames: int = 75, seed: int = 0
) -> Path:
    """``speakers`` maps a speaker name to its split. Returns the cache folder."""
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
            (folder / "meta.json").write_text(json.dumps(rec.to_dict()))
            sources.append(ClipSource(clip_id, Path(rec.source), split, speaker))
    write_manifest(sources, root, PrepOptions(), 1, 0, len(sources), 0.0)
    return root
