"""Make the demo sample: a 4 s, 25 fps video of the public-domain NASA astronaut portrait that scikit-image ships
(Eileen Collins), with a slow zoom and pan so the face moves as in real footage, and a synthetic voice-like track.

    python examples/make_sample.py out/demo/astronaut.mp4 [SIZE]
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from dubber.media import AudioClip, VideoWriter

FPS = Fraction(25)
SECONDS = 4
SIZE = 512
RATE = 16000


def frames(size: int = SIZE) -> np.ndarray:
    from skimage import data

    portrait = data.astronaut()
    n = int(FPS * SECONDS)
    for i in range(n):
        t = i / (n - 1)
        zoom = 1.0 + 0.25 * t  # push in on the face...
        angle = 3.0 * np.sin(2 * np.pi * t)  # ...with a gentle head-like sway
        m = cv2.getRotationMatrix2D((225.0 + 10 * t, 130.0), angle, zoom)
        m *= size / SIZE  # the same framing at another size
        yield cv2.warpAffine(portrait, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def voice_like(seconds: float) -> AudioClip:
    """Harmonics of a gliding 140 Hz pitch, gated into syllables: sounds like a voice, needs no speech synthesiser."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 0.5
    samples = (0.25 * tone * syllables).astype(np.float32)
    return AudioClip(samples=samples[None, :], sample_rate=RATE)


def main(dest: str, size: int = SIZE) -> None:
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, width=size, height=size, fps=FPS, audio=voice_like(SECONDS), overwrite=True) as writer:
        for image in frames(size):
            writer.write(image)
    print(path)


if __name__ == "__main__":
    size = int(sys.argv[2]) if len(sys.argv) > 2 else SIZE
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo/astronaut.mp4", size)
