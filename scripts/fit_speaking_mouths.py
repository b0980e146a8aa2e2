"""Fit the typical lips and jaw at 15 mouth openings that a photo's references are built from
(dubber/face/speaking_mouths.py; docs/QUALITY.md "Still photos").

    .venv/bin/python scripts/fit_speaking_mouths.py ../cache/prep [--hold-out benchmarks/split_long_clips.csv]
        [--write]

For every train clip of a `dub prep` cache (less the held-out speakers) with 50 usable frames or more: the 15
reference frames the completer would be given (spread over the clip's mouth openings, as in training), each one's
57 lip and jaw points less those of the most closed one, and their openings; clips whose openings span less than
0.05 are left out (a mouth that hardly moved teaches no range). The table is, rank by rank, the median over
speakers of each speaker's median over their clips (one speaker, GRID s1, holds most of the clips).
``--write`` stores it in dubber/face/speaking_mouths.npz.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from dubber.data.cache import PrepCache, held_out_speakers
from dubber.data.clip_arrays import ClipArrays, content_opening, reference_indices
from dubber.errors import InputError
from dubber.face.landmarks import N_POSE
from dubber.face.speaking_mouths import MIN_RANGE, TABLE

RANKS = 15
MIN_FRAMES = 50


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--hold-out", default="benchmarks/split_long_clips.csv", help="a CSV of speakers to leave out")
    ap.add_argument("--write", action="store_true", help=f"store the table in {TABLE}")
    args = ap.parse_args()
    try:
        cache = PrepCache(args.cache).without(held_out_speakers(args.hold_out))
    except InputError as error:
        raise SystemExit(str(error)) from None
    moves: dict[str, list[np.ndarray]] = defaultdict(list)
    openings: dict[str, list[np.ndarray]] = defaultdict(list)
    for record in cache.records("train"):
        clip = ClipArrays.from_track(cache.load(record, None))
        if clip.usable.sum() < MIN_FRAMES:
            continue
        content = clip.points[reference_indices(clip, RANKS, None), N_POSE:]
        opening = content_opening(content)
        if opening[-1] - opening[0] < MIN_RANGE:
            continue
        moves[record.speaker].append(content - content[0])
        openings[record.speaker].append(opening)
    if not moves:
        raise SystemExit(f"{args.cache}: no train clip of {MIN_FRAMES} frames or more whose mouth moves to fit on")
    displacements = _median_of_speakers(moves).astype(np.float32)
    typical = _median_of_speakers(openings).astype(np.float32)
    summary = {
        "clips": sum(len(v) for v in moves.values()),
        "speakers": len(moves),
        "openings": [round(float(o), 4) for o in typical],
        "widest_displacement": round(float(np.abs(displacements[-1]).max()), 4),
    }
    print(json.dumps(summary, indent=1))
    if args.write:
        np.savez(TABLE, displacements=displacements, openings=typical)
        print(f"wrote {TABLE}")


def _median_of_speakers(values: dict[str, list[np.ndarray]]) -> np.ndarray:
    return np.median(np.stack([np.median(np.stack(v), 0) for v in values.values()]), 0)


if __name__ == "__main__":
    main()
