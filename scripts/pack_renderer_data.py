"""Pack a prepared cache's renderer data for a GPU machine that is sent at most so many MiB a call (docs/GPU.md
"Training there"): per clip a few frames' crops and their 131 points, speakers taking turns
(dubber/data/render_pack.py).

    .venv/bin/python scripts/pack_renderer_data.py ../cache/prep .gpu/renderer-pack --limit-mib 36 \\
        --frames-per-clip 8 --hold-out benchmarks/split_long_clips.csv

The pack is a prepared cache itself: `dub train renderer --data PACK` reads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dubber.data.cache import PrepCache, held_out_speakers
from dubber.data.render_pack import write_render_pack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path, help="a folder written by dub prep")
    ap.add_argument("out", type=Path, help="the pack's folder (new)")
    ap.add_argument("--limit-mib", type=float, default=36.0, help="the pack's size at most")
    ap.add_argument("--frames-per-clip", type=int, default=8)
    ap.add_argument("--crf", type=int, default=12, help="the crops' H.264 CRF (the cache's: 12)")
    ap.add_argument("--splits", default="dev,train,video_only", help="comma-separated")
    ap.add_argument("--hold-out", default=None, help="a CSV with a speaker column: those speakers stay out")
    ap.add_argument("--parts", type=int, default=1, help="packs of different clips, every speaker in each")
    ap.add_argument("--part", type=int, default=0, help="which of the --parts (from 0)")
    args = ap.parse_args()
    cache = PrepCache(args.cache).without(held_out_speakers(args.hold_out))
    summary = write_render_pack(
        cache,
        args.out,
        limit_mib=args.limit_mib,
        frames_per_clip=args.frames_per_clip,
        crf=args.crf,
        splits=tuple(s for s in args.splits.split(",") if s),
        parts=args.parts,
        part=args.part,
    )
    print(json.dumps(summary.to_dict(), indent=1))


if __name__ == "__main__":
    main()
