"""`make demo` visibly articulates: the demo's still portrait (one closed-teeth smile, so every reference mouth is
closed) dubbed with the demo's speech by the shipped weights opens and closes its mouth, by at least half as much as
the landmarks it was given (the opening's std over the dubbed frames, MediaPipe on the output)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dubber.data.clip_arrays import content_opening
from dubber.face.landmarks import N_POSE
from dubber.pipeline import DubbingPipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_demo_portrait_opens_its_mouth_with_the_speech(tmp_path, monkeypatch):
    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    sample, speech, out = tmp_path / "astronaut.mp4", tmp_path / "speech.wav", tmp_path / "dubbed.mp4"
    subprocess.run([sys.executable, EXAMPLES / "make_sample.py", sample, "384"], check=True, capture_output=True)
    subprocess.run([sys.executable, EXAMPLES / "make_speech.py", speech], check=True, capture_output=True)
    pipe = DubbingPipeline.from_pretrained("default", device="cpu")
    source = pipe.analyse(sample)
    planned = content_opening(pipe.planned_landmarks(source, speech)[:, N_POSE:])
    result = pipe(sample, speech, out, analysis=source)
    found = pipe.analyse(out).opening[: result.dubbed_frames]
    assert np.isfinite(found).mean() > 0.95
    ratio = np.nanstd(found) / np.std(planned)
    assert ratio >= 0.5, f"the dubbed mouth moves {ratio:.2f} x as much as its landmarks"
