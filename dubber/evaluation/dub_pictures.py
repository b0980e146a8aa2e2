"""Pictures of a dub to look at: a contact sheet (original | dubbed | landmarks found on the dub, a row every N
frames), a side-by-side MP4 with the audio, and a plot of the mouth opening over time (original vs dub)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dubber.data.sources import ClipSource
from dubber.evaluation.dub_metrics import frame_points
from dubber.face.landmarks import N_POSE
from dubber.media.audio_feed import AudioFromFile
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.video_reader import VideoReader
from dubber.media.video_writer import VideoWriter
from dubber.pipeline.analysis import VideoTrack

ROW_HEIGHT = 192


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    scale = height / image.shape[0]
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def _marks(image: np.ndarray, points: np.ndarray | None) -> np.ndarray:
    out = image.copy()
    if points is None or not np.isfinite(points).all():
        cv2.putText(out, "no face", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 60, 60), 2, cv2.LINE_AA)
        return out
    r = max(1, round(image.shape[0] / 240))
    for k, (x, y) in enumerate(points):
        colour = (60, 220, 60) if k < N_POSE else (255, 60, 60)
        cv2.circle(out, (int(round(x)), int(round(y))), r, colour, -1, cv2.LINE_AA)
    return out


def contact_sheet(original: Path, dubbed: Path, dub_track: VideoTrack, dest: Path, rows: int = 6) -> Path:
    """Rows at evenly spaced frames: original | dubbed | dubbed with the landmarks found on it."""
    points = frame_points(dub_track.points, dub_track.transforms, dub_track.aspect)
    n = dub_track.frames
    wanted = set(np.linspace(0, max(0, n - 1), min(rows, n)).round().astype(int).tolist())
    picked: dict[int, list[np.ndarray]] = {}
    for i, (a, b) in enumerate(zip(VideoReader(original), VideoReader(dubbed), strict=False)):
        if i in wanted:
            picked[i] = [a.image, b.image, _marks(b.image, points[i] if i < n else None)]
    sheet = np.concatenate([np.concatenate([_fit(x, ROW_HEIGHT) for x in picked[i]], 1) for i in sorted(picked)])
    cv2.imwrite(str(dest), np.ascontiguousarray(sheet[:, :, ::-1]))
    return dest


def side_by_side(original: Path, dubbed: Path, dest: Path, height: int = 360) -> Path:
    """Original | dubbed, at most ``height`` pixels high, with the dub's audio."""
    first = VideoReader(dubbed)
    h = min(height, first.size[1])
    w = round(first.size[0] * h / first.size[1])
    with VideoWriter(
        dest,
        width=2 * w + (2 * w) % 2,
        height=h + h % 2,
        fps=first.fps,
        audio=AudioFromFile(dubbed),
        options=VideoEncodeOptions(crf=23, preset="veryfast"),
        overwrite=True,
    ) as writer:
        for a, b in zip(VideoReader(original), first, strict=False):
            row = np.concatenate([cv2.resize(a.image, (w, h)), cv2.resize(b.image, (w, h))], 1)
            writer.write(np.pad(row, ((0, h % 2), (0, (2 * w) % 2), (0, 0)), mode="edge"))
    return dest


def opening_plot(series: list[tuple[str, np.ndarray, np.ndarray, float]], dest: Path) -> Path:
    """Mouth opening over time, truth vs dub, one panel per clip: (title, truth, dub, fps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.2 * len(series)), squeeze=False)
    for ax, (title, truth, dub, fps) in zip(axes[:, 0], series, strict=True):
        t = np.arange(len(truth)) / fps
        ax.plot(t, truth, label="original", color="#1f77b4")
        ax.plot(t[: len(dub)], dub[: len(t)], label="dubbed", color="#d62728")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("opening")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(dest, dpi=90)
    plt.close(fig)
    return dest


class ClipPictures:
    """The per-clip pictures of a report, written under ``folder/clips/``; remembers openings for the plot."""

    def __init__(self, side_by_side_videos: bool = True) -> None:
        self.videos = side_by_side_videos
        self.openings: dict[str, tuple[str, np.ndarray, np.ndarray, float]] = {}  # the first clip of each speaker

    def __call__(self, clip: ClipSource, truth: VideoTrack, dubbed: Path, dub_track: VideoTrack, folder: Path):
        where = folder / "clips"
        where.mkdir(parents=True, exist_ok=True)
        out = {
            "contact_sheet": str(
                contact_sheet(clip.path, dubbed, dub_track, where / f"{clip.clip_id}.png").relative_to(folder)
            )
        }
        if self.videos:
            out["side_by_side"] = str(
                side_by_side(clip.path, dubbed, where / f"{clip.clip_id}.mp4").relative_to(folder)
            )
        fps = 1.0 / np.median(np.diff(truth.times)) if truth.frames > 1 else 25.0
        self.openings.setdefault(clip.speaker, (clip.clip_id, truth.opening, dub_track.opening, float(fps)))
        return out
