"""Clips of two people cut together, for the split protocol on videos of several people.

Each clip is four shots of equal length, A B A B: the first and second halves of two speakers' clips, scaled to one
square size, with their own sound. `dub eval --protocol split` dubs the first half (A, then B) with the second
half's speech (A's, then B's), so each dubbed frame's truth is the same person's mouth: the score says how well a
video cut between two people is dubbed on both.

    python scripts/two_person_clips.py benchmarks/split_long_clips.csv --split held_out --out ../runs/two-people
    dub eval --data ../runs/two-people --protocol split --out ../runs/two-people-eval --no-videos

Clips are paired in the manifest's order, the i-th of those at the most common frame rate with the (i + n/2)-th.
``--listener moving`` gives B's shots the sound of a third clip (the next pair's A), so that B's mouth moves but
not to what is heard; ``--listener still`` also holds B's first frame through B's shots (a listener who does not
move); ``--listener second`` gives only B's second shot the third clip's sound (B speaks, then listens): clips with
a speaker and a listener, for ``--only-speaking`` (``scripts/speaking_people.py`` reads them).
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import av
import cv2
import numpy as np

from dubber.media import VideoReader, decode_audio

RATE = 16000


def _frames(path: Path) -> int:
    return sum(1 for _ in VideoReader(path).frames())


def write_pair(
    first: Path,
    second: Path,
    out: Path,
    size: int,
    fps: int,
    heard: Path | None = None,
    still: bool = False,
    heard_late: bool = False,
) -> int:
    """``out`` (an .mp4): A B A B, each shot half of the shorter clip (B's shots with ``heard``'s sound, only the
    second if ``heard_late``, and B's first frame held through them if ``still``); the shot length in frames."""
    n = min(_frames(first), _frames(second), *([_frames(heard)] if heard else [])) // 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt, video.options = "yuv420p", {"crf": "14", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        sound = []
        held = None
        for path, lo in ((first, 0), (second, 0), (first, n), (second, n)):
            for frame in VideoReader(path).frames():
                if lo <= frame.index < lo + n:
                    shrink = frame.image.shape[0] > size
                    image = cv2.resize(
                        frame.image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
                    )
                    if still and path == second:
                        held = image if held is None else held
                        image = held
                    container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            hears = heard is not None and path == second and (lo > 0 or not heard_late)
            sound_of = heard if hears else path
            samples = decode_audio(sound_of, sample_rate=RATE).mono
            shot = samples[int(lo / fps * RATE) : int((lo + n) / fps * RATE)]
            sound.append(np.pad(shot, (0, max(0, round(n / fps * RATE) - len(shot))))[: round(n / fps * RATE)])
        container.mux(video.encode())
        pcm = np.concatenate(sound).astype(np.float32)
        for i in range(0, len(pcm), 1024):
            chunk = av.AudioFrame.from_ndarray(pcm[None, i : i + 1024], format="flt", layout="mono")
            chunk.sample_rate = RATE
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--split", default="held_out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument(
        "--listener", choices=("moving", "still", "second"), help="B listens: another clip's sound in its shots"
    )
    args = parser.parse_args()
    rows = [r for r in csv.DictReader(args.manifest.open()) if r["split"] == args.split]
    clips = [(r["speaker"], (args.manifest.parent / r["path"]).resolve()) for r in rows]
    rates = {path: round(VideoReader(path).fps) for _, path in clips}
    fps = Counter(rates.values()).most_common(1)[0][0]
    clips = [(who, path) for who, path in clips if rates[path] == fps]
    half = len(clips) // 2
    pairs = list(zip(clips[:half], clips[half : 2 * half], strict=True))
    for k, ((a, first), (b, second)) in enumerate(pairs):
        voice, heard = pairs[(k + 1) % len(pairs)][0] if args.listener else ("", None)
        out = args.out / f"{a}+{b}" / "abab.mp4"
        n = write_pair(first, second, out, args.size, fps, heard, args.listener == "still", args.listener == "second")
        print(f"{a} + {b}: 4 shots of {n} frames" + (f", B hearing {voice}" if heard else ""))


if __name__ == "__main__":
    main()
