"""How much the tracked mouth of each clip moves: the std of its opening (inner lips' gap over the mouth's width),
the measure ``dub --only-speaking`` calls a still mouth under ``STILL_MOUTH`` (dubber/pipeline/speaking_people.py).

    python scripts/mouth_movement.py [--out benchmarks/results/mouth_movement.json]

Clips of ../shared/data: the dev split's speakers never trained on, the wild split, the long clips
(benchmarks/split_long_clips.csv) and the first 40 train clips of 3 s or more not of GRID.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from dubber.pipeline.face_pass import track_video
from dubber.pipeline.speaking_people import STILL_MOUTH

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = list(csv.DictReader((SHARED / "manifest.csv").open()))
    clips = [r["path"] for r in rows if r["split"] in ("dev", "wild") and r["speaker"] != "grid_s1"]
    long_clips = csv.DictReader((ROOT / "benchmarks" / "split_long_clips.csv").open())
    clips += [r["path"].replace("../../shared/data/", "") for r in long_clips]
    train = [r for r in rows if r["split"] == "train" and float(r["seconds"]) >= 3]
    clips += [r["path"] for r in train if not r["speaker"].startswith("grid")][:40]
    stds = {}
    for clip in dict.fromkeys(clips):
        stds[clip] = round(float(np.nanstd(track_video(SHARED / clip, 128).opening)), 4)
        print(clip, stds[clip], flush=True)
    result = {
        "command": "python scripts/mouth_movement.py --out benchmarks/results/mouth_movement.json",
        "still_mouth": STILL_MOUTH,
        "clips": len(stds),
        "least": min(stds.values()),
        "opening_std": stds,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "opening_std"}))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
