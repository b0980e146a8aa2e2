"""Contact sheet of a dub under head roll: the demo's portrait rolled from -20 to +20 degrees, dubbed by the given
weights with the demo's speech; the source (top) and the dub (bottom) at five roll angles, the face cut out of each
frame. Prints the pose check's numbers (both from dubber/evaluation/pose_check.py).

    .venv/bin/python scripts/pose_sheet.py [--out docs/images/pose_roll.jpg] [--size 384] [--weights default]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dubber.evaluation.pose_check import check_pose, make_rolling_clip
from dubber.media.video_reader import VideoReader
from dubber.pipeline import DubbingPipeline
from dubber.pipeline.timeline import Timeline

ROOT = Path(__file__).resolve().parents[1]


ANGLES = (-20.0, -10.0, 0.0, 10.0, 20.0)


def frames_at(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    return {f.index: f.image for f in VideoReader(path) if f.index in wanted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "pose_roll.jpg")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--weights", default="default")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_rolling_clip(tmp / "roll.mp4", frames=50, size=args.size)
        speech = tmp / "speech.wav"
        subprocess.run([sys.executable, ROOT / "examples" / "make_speech.py", speech], check=True, capture_output=True)
        pipe = DubbingPipeline.from_pretrained(args.weights, device="cpu")
        r = check_pose(pipe, clip, speech, tmp / "dub.mp4")
        source = pipe.analyse(clip)
        timeline = Timeline.plan(source.frames, len(r.roll) / source.frame_rate(), source.frame_rate())
        # For each angle, the dubbed frame whose roll is nearest it (the earliest of equals).
        picks = [int(np.nanargmin(np.abs(r.roll - a) + 0.01 * np.arange(len(r.roll)))) for a in ANGLES]
        dub = frames_at(tmp / "dub.mp4", picks)
        src = frames_at(clip, [timeline.source_index(i) for i in picks])
        s = args.size
        box = (slice(int(0.17 * s), int(0.59 * s)), slice(int(0.28 * s), int(0.70 * s)))  # the face
        rows = []
        for images in (
            [src[timeline.source_index(i)] for i in picks],
            [dub[i] for i in picks],
        ):
            tiles = [cv2.resize(im[box], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for im in images]
            rows.append(np.concatenate(tiles, axis=1))
        sheet = np.concatenate(rows, axis=0)
        for k, i in enumerate(picks):
            x = k * 2 * (box[1].stop - box[1].start) + 6
            cv2.putText(sheet, f"roll {r.roll[i]:+.0f}", (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    rolled = np.abs(r.roll) >= 12
    print(
        f"{args.out}: jaw error {np.nanmean(r.jaw_error[rolled]):.3f} (rolled >= 12 deg) / "
        f"{np.nanmean(r.jaw_error[~rolled]):.3f} (less); border edges {np.nanmean(r.edge_ratio):.3f} "
        f"(largest {np.nanmax(r.edge_ratio):.3f})"
    )


if __name__ == "__main__":
    main()
