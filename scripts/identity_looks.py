"""How well the look of the upper face (dubber/face/identities.py) tells people apart, on ../shared/data.

Each single-speaker clip of 8 s or more (train, dev, wild; GRID left out) is tracked for up to 300 frames and every
frame facing the camera within ``CUT_TURN`` gives a look. Reported: (1) per clip, the lowest agreement of two
looks a frame or two apart (what ``LOOK_CUT`` must stay under within one shot); (2) the mean look of each third of
a clip, from the frames within ``MOST_YAW`` / ``MOST_PITCH``, against the other thirds of the same clip (one
person in one video: what ``SAME_PERSON`` must join), of the same speaker's other clips (another recording: for
information) and every other speaker's thirds (what ``SAME_PERSON`` must keep apart); (3) two speakers
of the same framing and colours cut together (A B A, 30 frames each, 256 px), which the scene-cut test misses:
the runs and identities pass 1 finds.

    .venv/bin/python scripts/identity_looks.py [--out benchmarks/results/identity_look.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dubber.face import FaceAligner, FaceTracker  # noqa: E402
from dubber.face import identities as ident  # noqa: E402
from dubber.media import VideoReader, VideoWriter  # noqa: E402
from dubber.media.encode_options import VideoEncodeOptions  # noqa: E402
from dubber.pipeline.face_pass import track_video  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CUT_PAIR = (
    "dev/katie_hill/SadTalker__WDA_KatieHill_000.mp4",
    "train/aoc/SadTalker__WDA_AlexandriaOcasioCortez_000.mp4",
)


def looks_of(path: Path, most: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(looks (F, 384), angles (F, 2), frame indices (F,)) of the frames looked at."""
    aligner, looks, angles, index = FaceAligner(128), [], [], []
    with FaceTracker() as tracker:
        for step in tracker.track(VideoReader(path)):
            if step.frame.index >= most:
                break
            face = step.face
            if face is None or not ident.RunLooks.wants_look(face.angles[:2]):
                continue
            looks.append(ident.face_look(aligner.crop(step.frame.image, face.transform)))
            angles.append(face.angles[:2])
            index.append(step.frame.index)
    return np.array(looks), np.array(angles), np.array(index)


def cut_pair(folder: Path) -> dict:
    video = folder / "cut.mp4"
    with VideoWriter(video, width=256, height=256, fps=25, options=VideoEncodeOptions(crf=14, preset="veryfast")) as w:
        for rel, first in ((CUT_PAIR[0], 0), (CUT_PAIR[1], 0), (CUT_PAIR[0], 40)):
            for frame in VideoReader(SHARED / rel):
                if first <= frame.index < first + 30:
                    w.write(cv2.resize(frame.image, (256, 256), interpolation=cv2.INTER_AREA))
    track = track_video(video, 128)
    identity = track.identity()
    return {
        "clips": list(CUT_PAIR),
        "runs": {str(k): v for k, v in track.pool.identities.of_run.items()},
        "identity_per_shot": [sorted(set(identity[a : a + 30].tolist())) for a in (0, 30, 60)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = list(csv.DictReader((SHARED / "manifest.csv").open()))
    clips = [
        r
        for r in rows
        if float(r["seconds"]) >= 8 and r["split"] in ("train", "dev", "wild") and r["speaker"] != "grid_s1"
        and "2spk" not in r["speaker"]  # two people in the frame
    ]  # fmt: skip
    consecutive, thirds = {}, []
    for r in clips:
        looks, angles, index = looks_of(SHARED / r["path"])
        near = np.flatnonzero(np.diff(index) <= ident.LOOK_GAP)
        if len(near):
            consecutive[r["path"]] = float(min(looks[k] @ looks[k + 1] for k in near))
        frontal = (np.abs(angles[:, 0]) <= ident.MOST_YAW) & (np.abs(angles[:, 1]) <= ident.MOST_PITCH)
        n = len(looks)
        for k in range(3):
            part = slice(k * n // 3, (k + 1) * n // 3)
            chosen = looks[part][frontal[part]]
            if len(chosen) >= ident.MIN_RUN_LOOKS:
                mean = chosen.sum(0)
                thirds.append((r["speaker"], r["path"], mean / np.linalg.norm(mean)))
        print(r["path"], f"{consecutive.get(r['path'], float('nan')):.3f}", flush=True)
    same, recordings, other = [], [], []
    for (sa, pa, a), (sb, pb, b) in itertools.combinations(thirds, 2):
        (same if pa == pb else recordings if sa == sb else other).append(float(a @ b))
    same_a, rec_a, other_a = np.array(same), np.array(recordings), np.array(other)
    with tempfile.TemporaryDirectory() as tmp:
        pair = cut_pair(Path(tmp))
    low = np.array(list(consecutive.values()))
    result = {
        "command": ".venv/bin/python scripts/identity_looks.py --out benchmarks/results/identity_look.json",
        "settings": {"SAME_PERSON": ident.SAME_PERSON, "LOOK_CUT": ident.LOOK_CUT, "MOST_YAW": ident.MOST_YAW},
        "consecutive_lowest_per_clip": consecutive,
        "clips_with_a_look_cut": int((low < ident.LOOK_CUT).sum()),
        "clips": len(consecutive),
        "same_clip_thirds": {"pairs": len(same), "min": same_a.min(), "p5": np.percentile(same_a, 5),
                             "median": np.median(same_a)},
        "same_speaker_other_clip_thirds": {"pairs": len(recordings), "min": rec_a.min(), "median": np.median(rec_a),
                                           "below_threshold": float((rec_a < ident.SAME_PERSON).mean())},
        "other_speakers_thirds": {"pairs": len(other), "median": np.median(other_a), "p95": np.percentile(other_a, 95),
                                  "max": other_a.max()},
        "same_split_at_threshold": float((same_a < ident.SAME_PERSON).mean()),
        "others_joined_at_threshold": float((other_a >= ident.SAME_PERSON).mean()),
        "cut_pair": pair,
    }  # fmt: skip
    result = json.loads(json.dumps(result, default=float))
    print(json.dumps({k: v for k, v in result.items() if k != "consecutive_lowest_per_clip"}, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
