"""How well each person's mouth follows a video's own sound, as ``dub --only-speaking`` reads it, and who it dubs.

    python scripts/speaking_people.py CLIP [CLIP ...] [--out RESULTS.json]

One JSON line per clip: the people told apart, each one's match (None: under 2 s of frames), those dubbed in some
shot, and per shot its first frame, person, match and whether it is dubbed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dubber.pipeline import DubbingPipeline
from dubber.pipeline.speaking_people import read_speaking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pipe = DubbingPipeline.from_pretrained("default", dtype="float32")
    rows = []
    for clip in args.clips:
        track = pipe.analyse(clip)
        references = track.references_by_person(pipe.landmarks.config.n_refs)
        reading = read_speaking(pipe.landmarks, pipe._audio_features(clip), track, track.frame_rate(), references)
        row = {"clip": str(clip), "people": len(track.person_order()), "matches": reading.matches}
        row["dubbed"] = reading.speaking()
        row["shots"] = [[shot.first, shot.person, shot.match, reading.shot_speaks(shot)] for shot in reading.shots]
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
