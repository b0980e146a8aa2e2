"""`dub eval`: the whole-dub metrics on synthetic cases with known answers, the report, and the command end to end
with the tiny weights bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dubber.cli.app import run
from dubber.data.sources import ClipSource
from dubber.evaluation.dub_eval import ClipReport, pick_cross_audio
from dubber.evaluation.dub_metrics import (
    LEFT_EYE_OUTER_AT,
    RIGHT_EYE_OUTER_AT,
    ImageScores,
    content_jitter,
    face_regions,
    landmark_scores,
    psnr_from_sums,
    speech_activity,
)
from dubber.evaluation.dub_report import markdown, summarise
from tests.media_factory import make_face_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

FACE = np.array([100.0, 90.0, 150.0, 0.0])  # a Similarity vector: centre (100, 90), 150 px per crop unit


def _points(n: int, rng: np.random.Generator) -> np.ndarray:
    pts = rng.uniform(40, 160, (n, 131, 2))
    pts[:, RIGHT_EYE_OUTER_AT] = (70, 80)
    pts[:, LEFT_EYE_OUTER_AT] = (130, 80)  # inter-ocular distance 60 px in every frame
    return pts


def test_identical_videos_score_the_exact_floor():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (180, 200, 3), dtype=np.uint8)
    scores = ImageScores()
    for _ in range(3):
        scores.add(frame, frame.copy(), FACE, full_ssim=True)
    r = scores.result()
    assert r["psnr_lower"] == r["psnr_frame"] == 100.0 and r["seam"] == 1.0
    assert r["ssim_lower"] == pytest.approx(1.0) and r["ssim_frame"] == pytest.approx(1.0)
    pts = _points(6, rng)
    opening = np.linspace(0.1, 0.4, 6)
    s = landmark_scores(pts, pts, opening, opening)
    assert s["lmd"] == 0.0 and s["opening_correlation"] == pytest.approx(1.0) and s["face_lost"] == 0


def test_a_shifted_mouth_gives_the_expected_lmd_and_lost_faces_are_counted():
    rng = np.random.default_rng(1)
    truth = _points(5, rng)
    found = truth.copy()
    found[:, 74:, 0] += 6.0  # every lip and jaw point 6 px to the right; inter-ocular distance 60 px
    found[3] = np.nan  # the face was lost on the output in one frame
    s = landmark_scores(found, truth, np.zeros(5), np.zeros(5))
    assert s["lmd"] == pytest.approx(0.1) and s["face_lost"] == 1
    assert s["opening_correlation"] is None  # constant openings: no correlation, and no NaN either


def test_silence_and_steady_motion_are_handled_without_nan():
    times = np.arange(10) / 25.0
    activity = speech_activity(np.zeros(16000, np.float32), 16000, times)
    assert np.isfinite(activity).all() and np.ptp(activity) == 0
    steady = np.cumsum(np.ones((8, 57, 2)) * 0.01, axis=0)  # moving at constant speed: no jitter
    assert content_jitter(steady, np.ones(8, bool)) == pytest.approx(0.0, abs=1e-9)
    wobble = steady.copy()
    wobble[4] += 0.05
    ok = np.ones(8, bool)
    assert content_jitter(wobble, ok) > 0.01
    ok[4] = False  # the face is lost where the points jumped: the runs either side are steady
    assert content_jitter(wobble, ok) == pytest.approx(0.0, abs=1e-9)
    assert content_jitter(wobble, np.array([1, 1, 0, 1, 1, 0, 1, 1], bool)) is None  # runs too short to measure
    assert psnr_from_sums(0.0, 0) is None and psnr_from_sums(255.0**2 * 10, 10) == pytest.approx(0.0)


def test_an_edge_along_the_border_raises_the_seam_score():
    y, x = np.mgrid[0:180, 0:200]
    smooth = np.dstack([(x / 200 * 255).astype(np.uint8)] * 3)
    inside, _ = face_regions(FACE, smooth.shape[:2])
    seamed = smooth.copy()
    seamed[inside] = 200  # a flat patch pasted without feathering or colour matching: an edge all round
    clean, seam = ImageScores(), ImageScores()
    clean.add(smooth.copy(), smooth, FACE, full_ssim=False)
    seam.add(seamed, smooth, FACE, full_ssim=False)
    assert clean.result()["seam"] == 1.0 and seam.result()["seam"] > 1.5


def test_cross_audio_comes_from_other_speakers_in_turn():
    clips = [ClipSource(f"c{i}", Path(f"{i}.mp4"), "dev", s) for i, s in enumerate("aabc")]
    partner = pick_cross_audio(clips)
    assert {k: v.clip_id for k, v in partner.items()} == {"c0": "c2", "c1": "c3", "c2": "c3", "c3": "c0"}
    assert pick_cross_audio(clips[:2]) == {}  # one speaker: nothing to cross with


def test_report_tables_and_failed_clips():
    floor = {
        "psnr_lower": 100.0,
        "ssim_lower": 1.0,
        "psnr_frame": 100.0,
        "ssim_frame": 1.0,
        "lmd": 0.0,
        "opening_correlation": 1.0,
        "jitter": 0.01,
        "face_lost": 0,
        "seam": 1.0,
    }
    dub = {**floor, "psnr_lower": 25.0, "lmd": 0.05, "opening_correlation": 0.5}
    ok = ClipReport(
        "c1",
        "a",
        "dev",
        10,
        {"dub": dub, "static_mouth": dub, "untouched": floor},
        {"opening_vs_speech": 0.3, "jitter": 0.02, "face_lost": 0, "seam": 1.01},
    )
    bad = ClipReport("c2", "b", "dev", 0, error="MediaDecodeError: corrupt")
    s = summarise([ok, bad])
    assert s["clips"] == 1 and s["failed"] == 1 and s["reconstruction"]["untouched"]["lmd"] == 0.0
    assert s["reconstruction"]["dub"]["psnr_lower"] == 25.0 and s["cross"]["opening_vs_speech"] == 0.3
    md = markdown(
        {
            "command": "dub eval",
            "seconds": 1.0,
            "floor": "x",
            "all": s,
            "splits": {"dev": s},
            "clips": [ok.to_dict(), bad.to_dict()],
            "opening_plot": "opening.png",
        }
    )
    assert "| all | untouched | 100.000 |" in md and "failed: MediaDecodeError" in md and "opening.png" in md


def test_dub_eval_end_to_end_with_pictures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    data = tmp_path / "clips"
    for speaker in ("ann", "bob"):
        (data / speaker).mkdir(parents=True)
        make_face_video(data / speaker / "take.mp4", frames=12, audio_rate=16000)
    out = tmp_path / "report"
    args = ["eval", "--data", str(data), "--out", str(out), "--weights", TINY_BUNDLE, "--steps", "1", "--json"]
    assert run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["all"]["clips"] == 2 and summary["all"]["failed"] == 0
    floor = summary["all"]["reconstruction"]["untouched"]
    assert floor["psnr_lower"] == 100.0 and floor["lmd"] == 0.0 and floor["ssim_lower"] == 1.0
    dub = summary["all"]["reconstruction"]["dub"]
    assert dub["psnr_lower"] < 100.0 and dub["lmd"] > 0.0 and summary["all"]["cross"]["seam"] is not None
    report = json.loads((out / "report.json").read_text())
    pictures = report["clips"][0]["pictures"]
    assert (out / pictures["contact_sheet"]).is_file() and (out / pictures["side_by_side"]).is_file()
    assert (out / "opening.png").is_file() and "contact sheet" in (out / "report.md").read_text()
    assert run(["eval", "--out", str(out)]) == 2  # --data missing: one line, exit 2
