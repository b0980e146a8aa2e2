"""Contact sheets of a dub under head pose, dubbed by the given weights with the demo's speech; the source (top) and
the dub (bottom) at five angles, the face cut out of each frame. Prints the pose check's numbers (both from
dubber/evaluation/pose_check.py).

    roll: the demo's portrait rolled from -20 to +20 degrees (made here)
    yaw:  a real 720p clip whose speaker turns from about -30 to +30 degrees (../shared/data, FaceForensics++ 004)

    .venv/bin/python scripts/pose_sheet.py roll [--out docs/images/pose_roll.jpg] [--size 384] [--weights default]
    .venv/bin/python scripts/pose_sheet.py yaw [--out docs/images/pose_yaw.jpg] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dubber.evaluation.pose_check import PoseCheck, check_pose, make_rolling_clip
from dubber.media.video_reader import VideoReader
from dubber.pipeline import DubbingPipeline
from dubber.pipeline.timeline import Timeline

ROOT = Path(__file__).resolve().parents[1]
ANGLES = {"roll": (-20.0, -10.0, 0.0, 10.0, 20.0), "yaw": (-28.0, -20.0, 0.0, 18.0, 28.0)}
YAW_CLIP = "video_only/ffpp_004/icpr2020dfdc__004.mp4"
TILE = 240


def frames_at(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    return {f.index: f.image for f in VideoReader(path) if f.index in wanted}


def face_tile(image: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The face and chin around the tracked crop's centre, TILE px square."""
    cx, cy, scale, _ = transform
    half = int(0.6 * scale)
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - 0.6 * half))
    return cv2.resize(image[y0 : y0 + 2 * half, x0 : x0 + 2 * half], (TILE, TILE), interpolation=cv2.INTER_AREA)


def sheet(pipe: DubbingPipeline, clip: Path, dub: Path, r: PoseCheck, kind: str) -> np.ndarray:
    source = pipe.analyse(clip)
    angle = r.roll if kind == "roll" else r.yaw
    timeline = Timeline.plan(source.frames, len(angle) / source.frame_rate(), source.frame_rate())
    # For each angle, the dubbed frame whose angle is nearest it (the earliest of equals).
    picks = [int(np.nanargmin(np.abs(angle - a) + 0.01 * np.arange(len(angle)))) for a in ANGLES[kind]]
    src_index = [timeline.source_index(i) for i in picks]
    dubbed, original = frames_at(dub, picks), frames_at(clip, src_index)
    rows = [
        np.concatenate([face_tile(original[j], source.transforms[j]) for j in src_index], axis=1),
        np.concatenate(
            [face_tile(dubbed[i], source.transforms[j]) for i, j in zip(picks, src_index, strict=True)], axis=1
        ),
    ]
    out = np.concatenate(rows, axis=0)
    for k, i in enumerate(picks):
        cv2.putText(out, f"{kind} {angle[i]:+.0f}", (k * TILE + 6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(ANGLES))
    ap.add_argument("--out", type=Path, help="default docs/images/pose_<kind>.jpg")
    ap.add_argument("--size", type=int, default=384, help="roll: the made clip's side")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="yaw: the shared data")
    ap.add_argument("--weights", default="default")
    args = ap.parse_args()
    out = args.out or ROOT / "docs" / "images" / f"pose_{args.kind}.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.kind == "roll":
            clip = make_rolling_clip(tmp / "roll.mp4", frames=50, size=args.size)
        else:
            clip = args.data / YAW_CLIP
            if not clip.exists():
                sys.exit(f"{clip}: not found (the yaw sheet needs ../shared/data)")
        speech = tmp / "speech.wav"
        subprocess.run([sys.executable, ROOT / "examples" / "make_speech.py", speech], check=True, capture_output=True)
        pipe = DubbingPipeline.from_pretrained(args.weights, device="cpu")
        r = check_pose(pipe, clip, speech, tmp / "dub.mp4")
        image = sheet(pipe, clip, tmp / "dub.mp4", r, args.kind)
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    angle = np.abs(r.roll if args.kind == "roll" else r.yaw)
    print(f"{out}: jaw error, border edges by |{args.kind}| (degrees):")
    for lo, hi in ((0, 10), (10, 20), (20, 25), (25, 45)):
        m = (angle >= lo) & (angle < hi)
        if m.any():
            print(
                f"  {lo:>2}-{hi:<2} {m.sum():>4} frames: jaw {np.nanmean(r.jaw_error[m]):.3f}, "
                f"edges {np.nanmean(r.edge_ratio[m]):.3f} (largest {np.nanmax(r.edge_ratio[m]):.3f})"
            )


if __name__ == "__main__":
    main()
