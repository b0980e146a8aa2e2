"""Speech for the demo: synthesised with espeak-ng when it is installed, else the copy kept in this folder (made
the same way, with the same text).

    python examples/make_speech.py out/demo/speech.wav
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TEXT = "Hello! I am an astronaut, and this video was dubbed by dubber, an open source lip sync tool."
KEPT = Path(__file__).with_name("speech.wav")  # espeak-ng 1.51, voice en-us, 150 words/min, 16 kHz mono


def synthesise(dest: Path) -> bool:
    """espeak-ng's 22 kHz output, resampled to 16 kHz mono with dubber's own decoder and writer."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return False
    from dubber.media import decode_audio, write_wav

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(raw), TEXT], check=True)
        clip = decode_audio(raw, sample_rate=16000)
    write_wav(dest, clip.mono, 16000)
    return True


def main(dest: str) -> None:
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not synthesise(path):
        shutil.copyfile(KEPT, path)
    print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo/speech.wav")
