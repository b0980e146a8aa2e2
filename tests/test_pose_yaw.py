"""A turning head dubs without a melted or doubled jaw: a real 720p clip from ../shared/data whose speaker turns from
about -30 to +30 degrees and back (FaceForensics++ 004, video only: dubbed with the demo's speech), scored per dubbed
frame as the rolled portrait is (dubber/evaluation/pose_check.py): the output's jaw points against the jaw the dub
was asked to draw, in inter-ocular units, and the edge energy along the redrawn region's border against the source
frame's. A still photo turned in perspective does not read as yaw to MediaPipe, hence real footage (skips without
it). Measured when written: docs/RENDERER.md "Pose"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dubber.evaluation.pose_check import check_pose
from dubber.pipeline import DubbingPipeline
from tests.conftest import shared_path

pytestmark = pytest.mark.shared_data
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_turned_head_keeps_its_jaw_where_asked_and_gains_no_contour(shared_manifest, tmp_path, monkeypatch):
    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    rows = [r for r in shared_manifest if r["speaker"] == "ffpp_004"]
    if not rows:
        pytest.skip("the turning clip (ffpp_004) is not in this copy of the shared data")
    speech = tmp_path / "speech.wav"
    subprocess.run([sys.executable, EXAMPLES / "make_speech.py", speech], check=True, capture_output=True)
    pipe = DubbingPipeline.from_pretrained("default", device="cpu")
    r = check_pose(pipe, shared_path(rows[0]), speech, tmp_path / "out.mp4")
    assert np.isfinite(r.jaw_error).mean() > 0.95
    turned, frontal = np.abs(r.yaw) >= 20, np.abs(r.yaw) < 15
    assert turned.sum() > 30 and frontal.sum() > 10 and np.nanmax(np.abs(r.yaw)) > 25
    assert np.nanmean(r.jaw_error[turned]) < 0.05  # a twentieth of the eyes' distance (0.024 when written)
    assert np.nanmean(r.jaw_error[turned]) < 2 * np.nanmean(r.jaw_error[frontal]) + 0.01
    assert np.nanmax(r.edge_ratio) < 1.05 and np.nanmean(r.edge_ratio[turned]) < 1.02
