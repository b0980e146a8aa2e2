"""How well the references alone place the lips and jaw of unseen dev speakers, with and without the pose warp.

    python tools/pose_base_probe.py ../cache/prep

For every dev clip of a speaker not in the train split: LMD (crop units) of the speaker's static mean shape (the
`dub eval landmarks` baseline), of the plain mean of the 15 references, and of the references carried to each frame's
pose by an affine map fitted on three sets of pose points (dubber.models.reference_warp). On clips over 3 s it also
reports whether the warped base replays the video's mouth: the correlation of its opening and of its chin height with
the true opening (a replay would be high), beside that of its chin with the true chin (head motion). Speaker means,
as the landmark eval weighs them. docs/DESIGN-NOTES.md ("Landmark completer") quotes its output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dubber.data.cache import PrepCache
from dubber.evaluation.landmark_eval import speaker_means
from dubber.evaluation.metrics import correlation, lmd
from dubber.face.landmarks import ALIGN_INDICES, FACE_OVAL_SIDES, LEFT_EYE, NOSE, POSE_INDICES, RIGHT_EYE
from dubber.models.reference_warp import warp_references
from dubber.training.landmark_data import content_opening, load_clips, reference_indices

POINT_SETS = {
    "alignment points": [POSE_INDICES.index(i) for i in ALIGN_INDICES if i in POSE_INDICES],
    "eyes, nose, face sides": [POSE_INDICES.index(i) for i in NOSE + RIGHT_EYE + LEFT_EYE + FACE_OVAL_SIDES],
    "all 74 pose points": list(range(len(POSE_INDICES))),
}
CHIN = 8  # the jaw's middle point (152) in content order


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--refs", type=int, default=15)
    args = ap.parse_args()
    cache = PrepCache(args.cache)
    train = {r.speaker for r in cache.records("train")}
    clips = [c for c in load_clips(cache, "dev") if c.speaker not in train]
    means = speaker_means(clips)  # the static baseline of `dub eval landmarks`
    speakers: dict[str, dict[str, list[float]]] = {}
    for clip in clips:
        u, ri = clip.usable, reference_indices(clip, args.refs, None)
        truth = clip.content[u]
        row = speakers.setdefault(clip.speaker, {})
        row.setdefault("static mean", []).append(lmd(np.broadcast_to(means[clip.speaker], truth.shape), truth))
        refmean = clip.content[ri].mean(0)
        row.setdefault("mean of references", []).append(lmd(np.broadcast_to(refmean, truth.shape), truth))
        for name, idx in POINT_SETS.items():
            pose = torch.from_numpy(clip.pose[:, idx])
            base = warp_references(pose[ri][None], torch.from_numpy(clip.content[ri])[None], pose[None])[0].numpy()
            row.setdefault(f"warped on {name}", []).append(lmd(base[u], truth))
            if clip.seconds > 3 and name.startswith("all"):
                opening = clip.opening[u]
                replay = correlation(content_opening(base[u]), opening)
                print(
                    f"{clip.clip_id}: warped base vs truth: opening~opening {replay:+.2f}"
                    f", chin height~opening {correlation(base[u][:, CHIN, 1], opening):+.2f}"
                    f", chin~chin {correlation(base[u][:, CHIN, 1], truth[:, CHIN, 1]):+.2f}"
                )
    methods = list(next(iter(speakers.values())))
    print("| speaker | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for speaker, row in speakers.items():
        print(f"| {speaker} | " + " | ".join(f"{np.mean(row[m]):.4f}" for m in methods) + " |")
    means = {m: float(np.mean([np.mean(r[m]) for r in speakers.values()])) for m in methods}
    static = means["static mean"]
    print("| mean (x static) | " + " | ".join(f"{v:.4f} ({v / static:.2f} x)" for v in means.values()) + " |")


if __name__ == "__main__":
    main()
