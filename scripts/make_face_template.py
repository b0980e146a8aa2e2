"""Build dubber/face/canonical_face.npy: the mean frontal face that defines the aligned crop.

Run once (needs ../shared/data): python scripts/make_face_template.py [--data ../shared/data]
Near-frontal frames from every train speaker are brought together by generalised Procrustes on the stable
alignment points, averaged, levelled (eyes horizontal), and framed: face sides span FACE_WIDTH of the crop, the
forehead-to-chin line is centred at CENTRE_Y, leaving room below the chin for an open jaw.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from dubber.face.aligner import apply_affine, fit_similarity
from dubber.face.landmarks import (
    ALIGN_INDICES,
    CHIN,
    FOREHEAD,
    LEFT_CHEEK,
    LEFT_EYE_OUTER,
    RIGHT_CHEEK,
    RIGHT_EYE_OUTER,
    head_angles,
)
from dubber.face.mediapipe_backend import MediaPipeBackend
from dubber.media import VideoReader

FACE_WIDTH = 0.70  # cheek (234) to cheek (454), as a fraction of the crop width
FOREHEAD_Y = 0.10  # landmark 10 near the top...
CHIN_Y = 0.80  # ...and the closed-mouth chin, leaving 0.2 of the crop for an open jaw and the neck line
FRAMES_PER_CLIP = 6
CLIPS_PER_SPEAKER = 4


def collect(data: Path) -> list[np.ndarray]:
    rows = list(csv.DictReader(open(data / "manifest.csv")))
    per_speaker: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["split"] == "train":
            per_speaker[r["speaker"]].append(r)
    faces = []
    backend = MediaPipeBackend()
    for speaker, clips in sorted(per_speaker.items()):
        for r in clips[:CLIPS_PER_SPEAKER]:
            reader = VideoReader(data / r["path"])
            stride = max(1, reader.frame_count // FRAMES_PER_CLIP)
            backend.reset()
            for frame in reader:
                pts = backend.landmarks(frame.image)
                if pts is None or frame.index % stride:
                    continue
                yaw, pitch, roll = head_angles(pts)
                if abs(yaw) < 8 and abs(roll) < 10:
                    faces.append(pts[:, :2])
        print(f"{speaker}: {len(faces)} faces so far")
    backend.close()
    return faces


def mean_face(faces: list[np.ndarray]) -> np.ndarray:
    idx = list(ALIGN_INDICES)
    ref = faces[0]
    for _ in range(5):
        aligned = [apply_affine(fit_similarity(f[idx], ref[idx]), f) for f in faces]
        ref = np.mean(aligned, axis=0)
    return ref


def frame_template(face: np.ndarray) -> np.ndarray:
    # Level the eyes, then scale so the height from forehead to chin spans CHIN_Y - FOREHEAD_Y.
    d = face[LEFT_EYE_OUTER] - face[RIGHT_EYE_OUTER]
    a = -np.arctan2(d[1], d[0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    face = face @ rot.T
    height = face[CHIN, 1] - face[FOREHEAD, 1]
    width = face[LEFT_CHEEK, 0] - face[RIGHT_CHEEK, 0]
    s = min((CHIN_Y - FOREHEAD_Y) / height, FACE_WIDTH / width)
    face = face * s
    cx = 0.5 * (face[LEFT_CHEEK, 0] + face[RIGHT_CHEEK, 0])
    cy = 0.5 * (face[FOREHEAD, 1] + face[CHIN, 1])
    return (face - [cx, cy] + [0.5, 0.5 * (FOREHEAD_Y + CHIN_Y)]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("dubber/face/canonical_face.npy"))
    args = ap.parse_args()
    faces = collect(args.data)
    template = frame_template(mean_face(faces))
    np.save(args.out, template)
    print(
        f"{len(faces)} faces -> {args.out}; x {template[:, 0].min():.3f}..{template[:, 0].max():.3f}, "
        f"y {template[:, 1].min():.3f}..{template[:, 1].max():.3f}"
    )


if __name__ == "__main__":
    main()
