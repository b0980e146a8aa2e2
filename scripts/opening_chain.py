"""Where a dub loses the mouth's opening between the landmarks it is given and the frame a viewer sees.

For one clip per speaker of a split, the split protocol's ceiling dub (the first half drawn from the second half's
tracked lips and jaw, ``dubber.evaluation.truth_motion``) is run with its drawn crops kept; the same tracker then
reads the mouth opening of (a) the landmarks given, (b) the drawn 128 px crops (upscaled to 384 px as a video), (c)
the pasted output, and (d) the source crops against the source frames (the measure's own agreement across the two
resolutions). Correlations over time are printed per clip and as means:

    .venv/bin/python scripts/opening_chain.py ../shared/data/manifest.csv --split dev [--no-source-detail]
        [--no-reference-blend]

``crop_vs_target`` is what the renderer keeps of its landmarks, ``out_vs_crop`` what the paste keeps of the
drawing, ``out_vs_truth`` the split protocol's ``true_landmarks`` score.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dubber.data.clip_arrays import content_opening
from dubber.data.sources import read_sources
from dubber.evaluation.metrics import correlation
from dubber.evaluation.split_eval import cut_halves
from dubber.evaluation.truth_motion import TruthLandmarksPipeline
from dubber.face.landmarks import N_POSE
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.video_writer import VideoWriter
from dubber.pipeline import DubbingPipeline, DubOptions, face_redraw

SIDE = 384  # the drawn crops as a video the tracker reads at about a dub's face size


def _openings_of_crops(pipe: DubbingPipeline, crops: np.ndarray, path: Path) -> np.ndarray:
    with VideoWriter(path, width=SIDE, height=SIDE, fps=25, options=VideoEncodeOptions(crf=12, preset="veryfast")) as w:
        for crop in crops:
            w.write(cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC))
    return pipe.analyse(path).opening


def _placed(values: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """``values`` at frame indices ``at`` of an n-frame series (NaN elsewhere)."""
    out = np.full(n, np.nan)
    k = min(len(values), len(at))
    keep = at[:k] < n
    out[at[:k][keep]] = values[:k][keep]
    return out


def chain(pipe: DubbingPipeline, clip_path: Path, folder: Path) -> dict | None:
    drawn: list = []
    render = face_redraw.FaceRedrawer.render

    def keeping(self, images, start, planned):
        d = render(self, images, start, planned)
        if d is not None:
            drawn.append(d)
        return d

    whole = pipe.analyse(clip_path)
    half = whole.frames // 2
    if half < 10:
        return None
    first, speech = cut_halves(clip_path, folder, half)
    source = pipe.analyse(first)
    face_redraw.FaceRedrawer.render = keeping
    try:
        out = folder / "out.mp4"
        TruthLandmarksPipeline(pipe, whole.points[half : 2 * half])(first, speech, out, overwrite=True, analysis=source)
    finally:
        face_redraw.FaceRedrawer.render = render
    todo = np.concatenate([d.todo for d in drawn])
    targets = np.concatenate([d.targets.numpy() for d in drawn])
    truth = _placed(whole.opening[half : 2 * half], np.arange(half), half)
    target = _placed(content_opening(targets[:, N_POSE:]), todo, half)
    crop = _placed(_openings_of_crops(pipe, np.concatenate([d.rendered for d in drawn]), folder / "c.mp4"), todo, half)
    src_crop = _placed(_openings_of_crops(pipe, np.concatenate([d.crops for d in drawn]), folder / "s.mp4"), todo, half)
    output = _placed(pipe.analyse(out).opening, np.arange(half), half)
    source_open = _placed(source.opening, np.arange(source.frames), half)
    return dict(
        frames=half,
        crop_vs_target=correlation(crop, target),
        out_vs_crop=correlation(output, crop),
        out_vs_target=correlation(output, target),
        out_vs_truth=correlation(output, truth),
        source_crop_vs_source=correlation(src_crop, source_open),
        std_target=float(np.nanstd(target)),
        std_crop=float(np.nanstd(crop)),
        std_out=float(np.nanstd(output)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--no-source-detail", action="store_true")
    ap.add_argument("--no-reference-blend", action="store_true", help="the network's drawing everywhere")
    args = ap.parse_args()
    options = DubOptions(source_detail=not args.no_source_detail, reference_blend=not args.no_reference_blend)
    pipe = DubbingPipeline.from_pretrained("default", dtype="float32", options=options)
    seen: set[str] = set()
    rows = []
    for clip in read_sources(args.manifest, {args.split}):
        if clip.speaker in seen:
            continue
        seen.add(clip.speaker)
        with tempfile.TemporaryDirectory(prefix="dub-chain-") as tmp:
            row = chain(pipe, clip.path, Path(tmp))
        if row is None:
            continue
        rows.append(row)
        print(json.dumps({"clip": clip.clip_id, **{k: round(v, 3) for k, v in row.items()}}), flush=True)
    keys = [k for k in rows[0] if k != "frames"]
    means = {k: round(float(np.mean([r[k] for r in rows if r[k] is not None])), 3) for k in keys}
    print(json.dumps({"mean": means, "clips": len(rows)}))


if __name__ == "__main__":
    main()
