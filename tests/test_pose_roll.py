"""A rolling head dubs without a melted or doubled jaw: the demo's portrait rolled from -20 to +20 degrees, dubbed by
the shipped weights with the demo's speech. Per dubbed frame (dubber/evaluation/pose_check.py): the output's jaw
points (MediaPipe) against the jaw the dub was asked to draw, in inter-ocular units, and the edge energy along the
redrawn region's border against the source frame's (a ghost contour of another frame's jaw adds edges there).
Measured with the mouth guard and the redrawn region reaching the upper lip (256 px): jaw 0.010 rolled and 0.014
upright, edges 0.96-1.014, 0.99 on average where rolled (docs/RENDERER.md "Pose" has the 384 px sheet's numbers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dubber.evaluation.pose_check import check_pose, make_rolling_clip
from dubber.pipeline import DubbingPipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_rolled_head_keeps_its_jaw_where_asked_and_gains_no_contour(tmp_path, monkeypatch):
    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    clip = make_rolling_clip(tmp_path / "roll.mp4", frames=50, size=256)
    speech = tmp_path / "speech.wav"
    subprocess.run([sys.executable, EXAMPLES / "make_speech.py", speech], check=True, capture_output=True)
    pipe = DubbingPipeline.from_pretrained("default", device="cpu")
    r = check_pose(pipe, clip, speech, tmp_path / "out.mp4")
    assert np.isfinite(r.jaw_error).mean() > 0.95  # the dubbed face is found in (almost) every frame
    rolled, upright = np.abs(r.roll) >= 12, np.abs(r.roll) < 5
    assert rolled.sum() > 20 and upright.sum() > 5
    assert np.nanmean(r.jaw_error[rolled]) < 0.05  # a twentieth of the eyes' distance
    assert np.nanmean(r.jaw_error[rolled]) < 2 * np.nanmean(r.jaw_error[upright]) + 0.01
    assert np.nanmax(r.edge_ratio) < 1.06 and np.nanmean(r.edge_ratio[rolled]) < 1.03
