"""How a still photo's dub moves against the speaker's real mouth: the split protocol with a photo as the input.

    .venv/bin/python scripts/still_split.py MANIFEST [--split S] [--per-speaker N] [--weights W] [--out RESULTS.json]
        [--against EARLIER.json [--key KEY]]

For each clip (halves of h frames, as ``dub eval --protocol split``) the input is the clip's first frame as a PNG
and the speech dubbed onto it is the second half's; the second half's tracked mouth is the truth, read at the dub's
times (a still's dub runs at 25 frames/s). Per clip: the output's opening correlation with the truth, its
articulation (std over the truth's) and its mouth sharpness over the photo's; the same correlation and articulation
of the landmarks the dub was given ("planned"), and the output's correlation with them ("follows plan"). float32,
as ``dub eval``. JSON lines per clip on stdout, then the means (the seen GRID speaker ``grid_s1`` left out of them,
as the split protocol's unseen group does); ``--out`` writes them all as one JSON. ``--against``: an earlier run's
results (its ``KEY`` entry of each clip, default "dub"), compared clip by clip: the mean difference and its standard
error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dubber.data.clip_arrays import content_opening
from dubber.data.sources import first_per_speaker, read_sources
from dubber.errors import DubberError
from dubber.evaluation.dub_metrics import frame_points
from dubber.evaluation.metrics import correlation
from dubber.evaluation.split_eval import MIN_HALF_FRAMES, mouth_sharpness, second_half_speech, std_ratio
from dubber.face.landmarks import N_POSE
from dubber.media.video_reader import VideoReader
from dubber.pipeline.dubbing import DubbingPipeline


def still_inputs(clip: Path, half: int, fps: float, folder: Path) -> tuple[Path, np.ndarray, Path]:
    """(the first frame as a PNG, that frame, the second half's speech as a WAV)."""
    frame = next(iter(VideoReader(clip))).image
    png = folder / "still.png"
    cv2.imwrite(str(png), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return png, frame, second_half_speech(clip, half, fps, folder / "speech.wav")


def score(
    pipe: DubbingPipeline, output: Path, out_fps: float, truth: np.ndarray, fps: float, photo_sharp, planned
) -> dict:
    """The dub against the truth; ``planned``: the opening of the landmarks it was given, per output frame."""
    track = pipe.analyse(output)
    n = min(track.frames, int(len(truth) / fps * out_fps))
    at = np.clip(np.round(np.arange(n) / out_fps * fps).astype(int), 0, len(truth) - 1)
    points = frame_points(track.points[:n], track.transforms[:n], track.aspect)
    sharp = []
    for i, frame in enumerate(VideoReader(output)):
        if i >= n:
            break
        value = mouth_sharpness(frame.image, points[i])
        if value is not None and photo_sharp:
            sharp.append(value / photo_sharp)
    opening, planned = track.opening[:n], planned[:n]
    return {
        "opening_correlation": correlation(opening, truth[at]),
        "articulation": std_ratio(opening, truth[at]),
        "sharpness": float(np.median(sharp)) if sharp else None,
        "planned_opening_correlation": correlation(planned, truth[at]),
        "planned_articulation": std_ratio(planned, truth[at]),
        "follows_plan": correlation(opening, planned),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--per-speaker", type=int, default=0, help="the first N clips of each speaker (0: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the clips and means as one JSON")
    ap.add_argument("--against", type=Path, default=None, help="an earlier run's --out, compared clip by clip")
    ap.add_argument("--key", default="dub", help="which entry of the earlier run's clips to compare with")
    ap.add_argument("--weights", default="default", help="weights by name, or a folder of landmarks/ and renderer/")
    args = ap.parse_args()
    try:
        pipe = DubbingPipeline.from_pretrained(args.weights, dtype="float32")
    except DubberError as error:
        raise SystemExit(f"error: {error}") from None
    rows = []
    for clip in first_per_speaker(read_sources(args.manifest, {args.split}), args.per_speaker):
        with tempfile.TemporaryDirectory(prefix="still-split-") as tmp:
            whole = pipe.analyse(clip.path)
            half = whole.frames // 2
            if half < MIN_HALF_FRAMES:
                continue
            fps = whole.frame_rate()
            png, frame, wav = still_inputs(clip.path, half, fps, Path(tmp))
            photo = pipe.analyse(png)
            photo_sharp = mouth_sharpness(frame, frame_points(photo.points[:1], photo.transforms[:1], photo.aspect)[0])
            result = pipe(png, wav, Path(tmp) / "dub.mp4", overwrite=True, analysis=photo)
            planned = content_opening(pipe.planned_landmarks(photo, wav)[:, N_POSE:])
            truth = whole.opening[half : 2 * half]
            row = {"clip": clip.clip_id, "speaker": clip.speaker}
            row["dub"] = score(pipe, result.output, result.fps, truth, fps, photo_sharp, planned)
            rows.append(row)
            print(json.dumps(row), flush=True)
    unseen = [r for r in rows if r["speaker"] != "grid_s1"]
    means = {k: float(np.mean([r["dub"][k] for r in unseen if r["dub"][k] is not None])) for k in unseen[0]["dub"]}
    summary = {"clips": len(unseen), "means": means}
    if args.against is not None:
        summary["against"] = paired(unseen, json.loads(args.against.read_text())["clips"], args.key)
    print(json.dumps(summary))
    if args.out is not None:
        command = "python scripts/still_split.py " + " ".join(sys.argv[1:])
        args.out.write_text(json.dumps({"command": command, "clips": rows, "unseen_means": summary}, indent=1))


def paired(rows: list[dict], earlier: list[dict], key: str) -> dict:
    """This run's scores less the earlier run's ``key`` entry, clip by clip (the clips both scored)."""
    before = {r["clip"]: r[key] for r in earlier if key in r}
    out = {}
    for metric in rows[0]["dub"]:
        diffs = [
            r["dub"][metric] - before[r["clip"]][metric]
            for r in rows
            if r["clip"] in before and r["dub"][metric] is not None and before[r["clip"]].get(metric) is not None
        ]
        if len(diffs) > 1:
            se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs)))
            out[metric] = {"mean": float(np.mean(diffs)), "se": se, "clips": len(diffs)}
    return out


if __name__ == "__main__":
    main()
