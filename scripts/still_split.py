"""How a still photo's dub moves against the speaker's real mouth: the split protocol with a photo as the input.

    .venv/bin/python scripts/still_split.py MANIFEST [--split S] [--per-speaker N] [--gains 1.0,1.17]

For each clip (halves of h frames, as ``dub eval --protocol split``) the input is the clip's first frame as a PNG
and the speech dubbed onto it is the second half's; the second half's tracked mouth is the truth, read at the dub's
times (a still's dub runs at 25 frames/s). Per clip and per still gain (``articulation.STILL_GAIN``, the spread a
photo's plan gets): the output's opening correlation with the truth, its articulation (std over the truth's) and its
mouth sharpness over the photo's. float32, as ``dub eval``. JSON lines per clip on stdout, then the means (the seen
GRID speaker ``grid_s1`` left out of them, as the split protocol's unseen group does).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dubber.data.sources import first_per_speaker, read_sources
from dubber.evaluation.dub_metrics import frame_points
from dubber.evaluation.metrics import correlation
from dubber.evaluation.split_eval import MIN_HALF_FRAMES, mouth_sharpness, second_half_speech, std_ratio
from dubber.media.video_reader import VideoReader
from dubber.pipeline import articulation
from dubber.pipeline.dubbing import DubbingPipeline


def still_inputs(clip: Path, half: int, fps: float, folder: Path) -> tuple[Path, np.ndarray, Path]:
    """(the first frame as a PNG, that frame, the second half's speech as a WAV)."""
    frame = next(iter(VideoReader(clip))).image
    png = folder / "still.png"
    cv2.imwrite(str(png), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return png, frame, second_half_speech(clip, half, fps, folder / "speech.wav")


def score(pipe: DubbingPipeline, output: Path, out_fps: float, truth: np.ndarray, fps: float, photo_sharp) -> dict:
    track = pipe.analyse(output)
    n = min(track.frames, int(len(truth) / fps * out_fps))
    at = np.clip(np.round(np.arange(n) / out_fps * fps).astype(int), 0, len(truth) - 1)
    points = frame_points(track.points[:n], track.transforms[:n])
    sharp = []
    for i, frame in enumerate(VideoReader(output)):
        if i >= n:
            break
        value = mouth_sharpness(frame.image, points[i])
        if value is not None and photo_sharp:
            sharp.append(value / photo_sharp)
    opening = track.opening[:n]
    return {
        "opening_correlation": correlation(opening, truth[at]),
        "articulation": std_ratio(opening, truth[at]),
        "sharpness": float(np.median(sharp)) if sharp else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--per-speaker", type=int, default=0, help="the first N clips of each speaker (0: all)")
    ap.add_argument("--gains", default=f"1.0,{articulation.STILL_GAIN}")
    args = ap.parse_args()
    gains = [float(g) for g in args.gains.split(",")]
    pipe = DubbingPipeline.from_pretrained(dtype="float32")
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
            photo_sharp = mouth_sharpness(frame, frame_points(photo.points[:1], photo.transforms[:1])[0])
            row = {"clip": clip.clip_id, "speaker": clip.speaker}
            for gain in gains:
                articulation.STILL_GAIN = gain
                result = pipe(png, wav, Path(tmp) / "dub.mp4", overwrite=True)
                row[str(gain)] = score(
                    pipe, result.output, result.fps, whole.opening[half : 2 * half], fps, photo_sharp
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    unseen = [r for r in rows if r["speaker"] != "grid_s1"]
    means = {
        str(g): {
            k: float(np.mean([r[str(g)][k] for r in unseen if r[str(g)][k] is not None])) for k in unseen[0][str(g)]
        }
        for g in gains
    }
    print(json.dumps({"clips": len(unseen), "means": means}))


if __name__ == "__main__":
    main()
