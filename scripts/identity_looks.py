"""How well the look of the upper face (dubber/face/identities.py) tells people apart, on ../shared/data.

Each single-speaker clip of 8 s or more (train, dev, wild; GRID left out) is tracked for up to 300 frames and every
frame facing the camera within ``CUT_TURN`` gives a look. Reported: (1) per clip, the lowest agreement of two
looks a frame or two apart (what ``LOOK_CUT`` must stay under within one shot); (2) the mean look of each third of
a clip, from the frames within ``MOST_YAW`` / ``MOST_PITCH``, against the other thirds of the same clip (one
person in one video: what ``SAME_PERSON`` must join), of the same speaker's other clips (another recording: for
information) and every other speaker's thirds (what ``SAME_PERSON`` must keep apart); (3) two speakers
of the same framing and colours cut together (A B A, 30 frames each, 256 px), which the scene-cut test misses:
the runs and identities pass 1 finds; (4) ``turned``: over the clips of 3 s or more (video_only too, up to 400
frames), the mean look of each third of a clip in each turned pose bin (``pose_bin``, 8 looks or more) against the
other thirds' and other speakers' in the same bin, a bin apart, and mirrored to the other side.

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


def _turned_groups(rows: list[dict]) -> list[tuple[str, str, int, int, np.ndarray, np.ndarray]]:
    """(speaker, clip, third, pose bin, unit mean look, the same mirrored) for each third of each clip and turned
    pose bin with ``MIN_RUN_LOOKS`` looks or more."""
    groups = []
    for r in rows:
        looks, angles, _ = looks_of(SHARED / r["path"], most=400)
        if len(looks) < 3 * ident.MIN_RUN_LOOKS:
            continue
        poses = np.array([ident.pose_bin((float(y), float(p))) for y, p in angles], dtype=object)
        n = len(looks)
        for third in range(3):
            part = np.zeros(n, bool)
            part[third * n // 3 : (third + 1) * n // 3] = True
            for pose in sorted({q for q in poses[part] if q}):
                chosen = part & (poses == pose)
                if chosen.sum() >= ident.MIN_RUN_LOOKS:
                    mean = looks[chosen].sum(0)
                    mean /= np.linalg.norm(mean)
                    mirrored = mean.reshape(ident._GRID[1], ident._GRID[0])[:, ::-1].ravel()  # the look is symmetric
                    groups.append((r["speaker"], r["path"], third, int(pose), mean, mirrored))
        print(r["path"], "turned looks:", int(sum(1 for q in poses if q)), flush=True)
    return groups


def _turned_agreement(groups: list) -> dict:
    """Cosines of the groups' mean looks by how their poses relate (one side, the same bin or a bin apart; the
    other side's mirrored onto this one, the same bin) and whose they are."""
    pairs: dict[str, list[float]] = {}
    for a, b in itertools.combinations(groups, 2):
        if a[1] == b[1] and a[2] == b[2]:
            continue
        if a[3] == b[3]:
            how, cosine = "same side, same bin", float(a[4] @ b[4])
        elif a[3] * b[3] > 0 and abs(a[3] - b[3]) == 1:
            how, cosine = "same side, a bin apart", float(a[4] @ b[4])
        elif a[3] == -b[3]:
            how, cosine = "other side mirrored, same bin", float(a[5] @ b[4])
        else:
            continue
        whose = "same clip" if a[1] == b[1] else "same speaker" if a[0] == b[0] else "other speakers"
        pairs.setdefault(f"{how}: {whose}", []).append(cosine)
    return {
        key: {"pairs": len(v), "min": float(np.min(v)), "p5": float(np.percentile(v, 5)), "median": float(np.median(v)),
              "p95": float(np.percentile(v, 95)), "max": float(np.max(v))}
        for key, v in sorted(pairs.items())
    }  # fmt: skip


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
    turned_rows = [
        r
        for r in rows
        if float(r["seconds"]) >= 3 and r["split"] in ("train", "dev", "wild", "video_only")
        and not r["speaker"].startswith("grid") and "2spk" not in r["speaker"]
    ]  # fmt: skip
    turned = _turned_agreement(_turned_groups(turned_rows))
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
        "turned": turned,
    }  # fmt: skip
    result = json.loads(json.dumps(result, default=float))
    print(json.dumps({k: v for k, v in result.items() if k != "consecutive_lowest_per_clip"}, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
