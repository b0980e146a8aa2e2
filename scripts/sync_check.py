"""How well ``dub sync`` tells a video's own sound from another, reads the offset between picture and sound, and
what it says of dubs, on speakers no shipped model trained on.

    python scripts/sync_check.py --out benchmarks/results/sync_check.json

Clips: the long held-out clips (benchmarks/split_long_clips.csv) and the dev split's unseen speakers with 2.9 s or
more (MEAD, TMSV, GRID LipNet). Each clip is checked (shipped weights, float32, defaults)
1. with its own sound;
2. with every other clip's sound (timed from its first frame): what a voice-over, another take or another
   language reads as; also with ``--max-offset 0.5`` (a wider search finds more chance matches);
3. with its own sound heard 2 and 4 frames earlier and later (cut at the start, or silence added), with
   ``--max-offset 0.4``: the offset read should move by as many frames;
4. unless ``--no-dubs``: dubbed with the next clip's sound (default settings), the dub and the undubbed clip each
   checked against that sound.
And the wild split's clips (other tools' talking-face outputs) with their own sound.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np

from dubber.media.audio import decode_audio, write_wav
from dubber.pipeline import DubbingPipeline

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
UNSEEN_DEV = ("mead_M026", "tmsv_SP05", "grid_lipnet_lwbsza")
SHIFTS = (-4, -2, 2, 4)  # frames the sound is heard later (> 0) or earlier


def clips() -> list[Path]:
    long = REPO / "benchmarks" / "split_long_clips.csv"
    paths = [(long.parent / r["path"]).resolve() for r in csv.DictReader(long.open())]
    rows = list(csv.DictReader((DATA / "manifest.csv").open()))
    paths += [DATA / r["path"] for r in rows if r["split"] == "dev" and r["speaker"] in UNSEEN_DEV]
    return [p for p in paths if p.exists()]


def wild() -> list[Path]:
    rows = list(csv.DictReader((DATA / "manifest.csv").open()))
    return [DATA / r["path"] for r in rows if r["split"] == "wild" and (DATA / r["path"]).exists()]


def shifted(path: Path, frames: int, fps: float, folder: Path) -> Path:
    """``path``'s sound heard ``frames`` later (silence first) or earlier (its start cut)."""
    clip = decode_audio(path)
    n = round(clip.sample_rate * abs(frames) / fps)
    mono = clip.mono
    samples = np.concatenate([np.zeros(n, np.float32), mono]) if frames > 0 else mono[n:]
    return write_wav(folder / f"{path.stem}_{frames:+d}.wav", samples, clip.sample_rate)


def auc(positive: list[float], negative: list[float]) -> float:
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative]
    return float(np.mean(wins))


def share(values: list[float], at: float) -> float:
    return round(float(np.mean(np.asarray(values) >= at)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-dubs", action="store_true", help="Leave out part 4 (the dubs).")
    args = parser.parse_args()
    from dubber.pipeline.mouth_lag import MIN_CORRELATION
    from dubber.pipeline.sync_check import FOLLOWS

    pipe = DubbingPipeline.from_pretrained(dtype="float32")
    paths = clips()
    tracks = {p: pipe.analyse(p) for p in paths}
    result: dict = {"command": "python scripts/sync_check.py --out benchmarks/results/sync_check.json", "clips": []}
    own, others, own_wide, others_wide, errors = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k, path in enumerate(paths):
            track = tracks[path]
            fps = track.frame_rate()
            mine = pipe.check_sync(path, analysis=track)
            row = {"clip": str(path.relative_to(DATA)), "own": mine.to_dict(), "others": {}, "shifted": {}}
            own.append(mine.match)
            for other in paths:
                if other != path:
                    reading = pipe.check_sync(path, other, analysis=track)
                    row["others"][other.stem] = reading.match
                    others.append(reading.match)
                    others_wide.append(pipe.check_sync(path, other, max_offset=0.5, analysis=track).match)
            wide = pipe.check_sync(path, max_offset=0.4, analysis=track).reading.offset
            own_wide.append(pipe.check_sync(path, max_offset=0.5, analysis=track).match)
            for frames in SHIFTS:
                moved = pipe.check_sync(path, shifted(path, frames, fps, folder), max_offset=0.4, analysis=track)
                row["shifted"][frames] = moved.reading.offset
                errors.append(abs(moved.reading.offset - (wide - frames)))
            if not args.no_dubs:
                voice = paths[(k + 1) % len(paths)]
                out = folder / f"{path.stem}.dubbed.mp4"
                pipe(path, voice, out, overwrite=True, analysis=track)
                row["dub"] = {
                    "voice": voice.stem,
                    "dub": pipe.check_sync(out, voice).match,
                    "undubbed": pipe.check_sync(path, voice, analysis=track).match,
                }
            result["clips"].append(row)
            print(path.name, mine.match, mine.reading.offset, flush=True)
    result["summary"] = {
        "clips": len(paths),
        "own_mean": round(float(np.mean(own)), 3),
        "own_min": round(float(np.min(own)), 3),
        "others_mean": round(float(np.mean(others)), 3),
        "others_p95": round(float(np.percentile(others, 95)), 3),
        "others_max": round(float(np.max(others)), 3),
        "auc": round(auc(own, others), 3),
        "own_wide_mean": round(float(np.mean(own_wide)), 3),
        "auc_wide": round(auc(own_wide, others_wide), 3),
        "others_wide_mean": round(float(np.mean(others_wide)), 3),
        f"others_wide_at_least_{FOLLOWS}": share(others_wide, FOLLOWS),
        f"others_wide_at_least_{MIN_CORRELATION}": share(others_wide, MIN_CORRELATION),
        f"own_at_least_{FOLLOWS}": share(own, FOLLOWS),
        f"others_at_least_{FOLLOWS}": share(others, FOLLOWS),
        f"own_at_least_{MIN_CORRELATION}": share(own, MIN_CORRELATION),
        f"others_at_least_{MIN_CORRELATION}": share(others, MIN_CORRELATION),
        "shifts_read_exactly": share([-e for e in errors], 0),
        "shifts_read_within_1_frame": share([-e for e in errors], -1),
    }
    if not args.no_dubs:
        dubs = [r["dub"] for r in result["clips"]]
        result["summary"]["dub_mean"] = round(float(np.mean([d["dub"] for d in dubs])), 3)
        result["summary"]["undubbed_mean"] = round(float(np.mean([d["undubbed"] for d in dubs])), 3)
    result["wild"] = [{"clip": str(p.relative_to(DATA)), **pipe.check_sync(p).to_dict()} for p in wild()]
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
