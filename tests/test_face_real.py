"""MediaPipe tracking and alignment on real talking-face clips from ../shared/data (skipped without it)."""

from __future__ import annotations

from collections import defaultdict
from itertools import islice

import numpy as np
import pytest
from conftest import shared_path
from media_factory import psnr

from dubber.face import FaceAligner, FaceTracker, inter_ocular, mouth_opening
from dubber.face.landmarks import LEFT_EYE, NOSE, RIGHT_EYE
from dubber.media import VideoReader

pytestmark = pytest.mark.shared_data


def _one_clip_per_speaker(manifest: list[dict], splits=("train", "dev")) -> list[dict]:
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for row in manifest:
        if row["split"] in splits:
            by_speaker[row["speaker"]].append(row)
    # The shortest clip of each speaker keeps the suite fast while covering every face, size and frame rate.
    return [min(rows, key=lambda r: float(r["seconds"])) for _, rows in sorted(by_speaker.items())]


def test_face_found_on_95_percent_of_frames_of_every_speaker(shared_manifest):
    clips = _one_clip_per_speaker(shared_manifest)
    assert len(clips) >= 30
    failures = []
    with FaceTracker() as tracker:
        for row in clips:
            tracker.reset()
            steps = [s.face is not None for s in tracker.track(VideoReader(shared_path(row)))]
            ratio = float(np.mean(steps))
            if ratio < 0.95:
                failures.append(f"{row['path']}: {ratio:.3f}")
    assert not failures, failures


@pytest.mark.parametrize("size", [128, 256])
def test_aligner_round_trip_on_real_faces(shared_manifest, size):
    rows = [r for r in shared_manifest if r["split"] == "dev" and int(r["height"]) <= 360][:4]
    assert rows
    aligner = FaceAligner(size)
    with FaceTracker() as tracker:
        for row in rows:
            tracker.reset()
            for step in islice(tracker.track(VideoReader(shared_path(row))), 0, 30, 10):
                face = step.face
                assert face is not None
                # Compare where the crop does not shrink the face (a smaller crop cannot hold all the detail).
                if face.transform.scale > size:
                    continue
                crop = aligner.crop(step.frame.image, face.transform)
                back, _ = aligner.uncrop(crop, face.transform, step.frame.image.shape)
                b = face.box
                ys, xs = slice(int(b.y0), int(b.y1)), slice(int(b.x0), int(b.x1))
                assert psnr(back[ys, xs], step.frame.image[ys, xs]) > 40, row["path"]


def _jitter(points: np.ndarray, idx: list[int]) -> float:
    """Mean size of the second difference (acceleration) of rigid upper-face points, in inter-ocular units."""
    p = points[:, idx, :2]
    acc = p[2:] - 2 * p[1:-1] + p[:-2]
    iod = np.mean([inter_ocular(f) for f in points])
    return float(np.linalg.norm(acc, axis=-1).mean() / iod)


def test_tracking_jitters_less_than_per_frame_detection(shared_manifest):
    from dubber.face.mediapipe_backend import MediaPipeBackend

    # GRID: a seated speaker whose head barely moves while the mouth does.
    row = next(r for r in shared_manifest if r["split"] == "dev" and r["speaker"] == "grid_s1")
    frames = list(VideoReader(shared_path(row)))
    with MediaPipeBackend(static=True) as per_frame:
        raw = [per_frame.landmarks(f.image) for f in frames]
    with FaceTracker() as tracker:
        tracked = [s.face.points for s in tracker.track(frames)]
    assert all(r is not None for r in raw)
    raw, tracked = np.stack(raw), np.stack(tracked)
    rigid = list(RIGHT_EYE + LEFT_EYE + NOSE)
    j_raw, j_tracked = _jitter(raw, rigid), _jitter(tracked, rigid)
    assert j_tracked < 0.8 * j_raw, (j_tracked, j_raw)
    # Smoothing must not damp speech: mouth opening over time stays the same signal.
    corr = np.corrcoef(mouth_opening(raw), mouth_opening(tracked))[0, 1]
    assert corr > 0.9, corr
