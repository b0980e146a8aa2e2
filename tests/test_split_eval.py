"""``dub eval --protocol split``: the first half of a clip dubbed with its second half's speech, scored against the
second half's mouth, with its baselines in the same report."""

from __future__ import annotations

import json

import numpy as np

from dubber.cli.app import run
from dubber.evaluation.split_eval import cut_halves, lip_shape, mouth_sharpness
from dubber.media import decode_audio, probe_media
from tests.media_factory import make_face_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights


def test_the_halves_are_cut_where_they_should_be(tmp_path):
    clip = make_face_video(tmp_path / "clip.mp4", frames=30, audio_rate=16000)
    first, speech = cut_halves(clip, tmp_path, 15)
    info = probe_media(first)
    assert info.video.frame_count == 15 and abs(info.audio.duration - 0.6) < 0.05  # the first half keeps its audio
    assert abs(decode_audio(speech).duration - 0.6) < 0.01  # the second half's speech alone


def test_lip_shape_ignores_where_the_face_is_and_sharpness_reads_the_mouth():
    rng = np.random.default_rng(0)
    points = rng.random((1, 131, 2)) * 100
    moved = points * 2.0 + 37.0  # another place and size: the shape in inter-ocular units is the same
    np.testing.assert_allclose(lip_shape(moved), lip_shape(points), atol=1e-9)
    image = np.zeros((120, 120, 3), np.uint8)
    image[::2] = 255  # stripes: sharp
    mouth = np.full((131, 2), 60.0)
    mouth[80:, 0] += np.linspace(-20, 20, 51)
    mouth[80:, 1] += np.linspace(-8, 8, 51)
    blurred = np.full_like(image, 128)
    assert mouth_sharpness(image, mouth) > 1000 * max(mouth_sharpness(blurred, mouth), 1e-9)
    assert mouth_sharpness(image, np.full((131, 2), np.nan)) is None


def test_split_protocol_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    clips = tmp_path / "clips" / "spk"
    clips.mkdir(parents=True)
    make_face_video(clips / "a.mp4", frames=40, audio_rate=16000)
    out = tmp_path / "report"
    args = ["eval", "--data", str(tmp_path / "clips"), "--out", str(out), "--weights", TINY_BUNDLE, "--protocol"]
    assert run([*args, "split"]) == 0
    report = json.loads((out / "report.json").read_text())
    clip = report["clips"][0]
    assert not clip["error"] and clip["frames"] == 20 and report["protocol"] == "split"
    assert set(clip["methods"]) == {"dub", "true_landmarks", "static_mouth", "no_dub"}
    no_dub = clip["methods"]["no_dub"]
    assert no_dub["sharpness"] == 1.0 and no_dub["seam"] == 1.0  # the untouched half against itself
    assert clip["planned_opening_correlation"] is None or -1 <= clip["planned_opening_correlation"] <= 1
    assert clip["follows_plan"] is None or -1 <= clip["follows_plan"] <= 1  # the dub's opening against the plan's
    assert "follows_plan" in report["groups"]["all"] and "planned_articulation" in report["groups"]["all"]
    assert "follows_plan_fast" in report["groups"]["all"]
    assert clip["planned_articulation"] is None or clip["planned_articulation"] >= 0  # planned std over the truth's
    assert "mouth_lag" in clip and "own_speech_match" in clip and "opening_correlation_at_lag" in clip["methods"]["dub"]
    if clip["mouth_lag"] in (None, 0):  # not timed, or in time: the score at the lag is the score
        assert clip["methods"]["dub"]["opening_correlation_at_lag"] == clip["methods"]["dub"]["opening_correlation"]
    assert "planned_opening_correlation_at_lag" in report["groups"]["all"] and "truth_lag" in clip
    assert "truth lag" in (out / "report.md").read_text()
    markdown = (out / "report.md").read_text()
    assert "dub eval --protocol split" in markdown and "follows plan" in markdown and "planned articulation" in markdown
    assert 20 < clip["face_width"] < 96  # the synthetic face, cheek to cheek, in a 96 px wide frame
    assert run([*args, "halves"]) == 2


def test_true_landmarks_are_the_truths_lips_and_jaw_carried_to_each_frames_pose():
    from dubber.evaluation.truth_motion import TruthMotion
    from dubber.face.landmarks import N_POSE
    from dubber.pipeline.timeline import Timeline

    rng = np.random.default_rng(0)
    truth = (0.3 + 0.4 * rng.random((6, 131, 2))).astype(np.float32)
    truth[2] = np.nan  # no face tracked there: its neighbour stands in

    class Track:  # the dub's source: the truth's own frames, shifted, scaled and sheared by a head pose
        points = truth[[0, 1, 3, 3, 4, 5]] @ np.array([[1.1, 0.05], [0.0, 0.9]], np.float32) + 0.02

        def filled_index(self):
            return np.arange(6)

    motion = TruthMotion(Track(), Timeline.plan(6, 6 / 25, 25.0, "pingpong", False), truth)
    targets = motion.targets(0, 6)
    assert targets.shape == (6, 131, 2) and np.isfinite(targets).all()
    np.testing.assert_array_equal(targets[:, :N_POSE], Track.points[:, :N_POSE])  # the source frames' pose
    # An affine change of pose carries the truth's lips and jaw exactly.
    for i in (0, 1, 3, 4, 5):
        np.testing.assert_allclose(targets[i, N_POSE:], Track.points[i, N_POSE:], atol=1e-4)
    stand_in = truth.copy()
    stand_in[2] = truth[1]  # the untracked frame reads its nearest tracked one
    np.testing.assert_allclose(TruthMotion(Track(), motion.timeline, stand_in).targets(0, 6), targets, atol=1e-6)


def test_the_report_groups_the_large_faces():
    from dubber.evaluation.split_eval import SplitClipReport
    from dubber.evaluation.split_report import OWN_SPEECH_GROUP, build_split_report

    def clip(name, width, sharpness):
        methods = {m: {"opening_correlation": 0.5, "sharpness": sharpness} for m in ("dub", "no_dub")}
        return SplitClipReport(name, name, "dev", 20, methods, face_width=width, follows_plan=sharpness)

    report = build_split_report(
        [clip("big", 520.0, 0.6), clip("small", 180.0, 0.9), clip("unknown", None, 0.9)],
        command="x",
        settings={},
        seconds=1.0,
    )
    large = report["groups"]["faces >= 400 px"]
    assert large["clips"] == 1 and large["methods"]["dub"]["sharpness"] == 0.6
    assert large["follows_plan"] == 0.6 and report["groups"]["all"]["follows_plan"] == 0.8  # the rendering's fidelity
    assert OWN_SPEECH_GROUP not in report["groups"]  # no clip was read as not following its own sound


def test_the_report_groups_the_clips_whose_mouth_follows_their_own_sound():
    from dubber.evaluation.split_eval import SplitClipReport
    from dubber.evaluation.split_report import OWN_SPEECH_GROUP, build_split_report

    def clip(name, match, score):
        methods = {m: {"opening_correlation": score} for m in ("dub", "no_dub")}
        return SplitClipReport(name, name, "wild", 20, methods, own_speech_match=match)

    clips = [clip("own voice", 0.6, 0.5), clip("voice-over", 0.05, -0.1), clip("too short", None, 0.2)]
    report = build_split_report(clips, command="x", settings={}, seconds=1.0)
    matched = report["groups"][OWN_SPEECH_GROUP]
    assert matched["clips"] == 1 and matched["methods"]["dub"]["opening_correlation"] == 0.5
    assert report["clips"][1]["own_speech_match"] == 0.05


def test_the_report_gives_the_dubs_lead_over_each_baseline_with_its_standard_error():
    from dubber.evaluation.split_eval import SplitClipReport
    from dubber.evaluation.split_report import SPLIT_KEYS, build_split_report, split_markdown

    def clip(name, dub, no_adapt, no_dub):
        corr = {"dub": dub, "no_adapt": no_adapt, "no_dub": no_dub}
        methods = {m: {**dict.fromkeys(SPLIT_KEYS), "opening_correlation": c} for m, c in corr.items()}
        return SplitClipReport(name, name, "dev", 20, methods)

    clips = [clip("a", 0.5, 0.4, 0.0), clip("b", 0.7, 0.5, 0.1), clip("c", 0.3, 0.4, None)]
    report = build_split_report(clips, command="x", settings={}, seconds=1.0)
    g = report["groups"]["all"]
    # Clip by clip: 0.1, 0.2, -0.1 -> mean 0.0667, standard error std(ddof=1) / sqrt(3) = 0.0882.
    assert g["dub_minus"]["no_adapt"] == {"mean": 0.0667, "se": 0.0882}
    assert g["dub_minus"]["no_dub"] == {"mean": 0.55, "se": 0.05}  # clip c has no no-dub score: left out
    assert g["opening_correlation_se"]["dub"] == 0.1155
    assert "- all: no_adapt 0.067 +- 0.088; no_dub 0.550 +- 0.050" in split_markdown(report)


def test_the_fast_part_keeps_the_syllable_rate_movement_and_drops_the_phrase_level_one():
    from dubber.evaluation.split_eval import fast_part

    t = np.arange(250) / 25.0
    slow, fast = 0.2 * np.sin(2 * np.pi * 0.3 * t), 0.05 * np.sin(2 * np.pi * 4.0 * t)  # a phrase, syllables
    part = fast_part(slow + fast, 25.0)
    inner = slice(10, -10)
    assert np.corrcoef(part[inner], fast[inner])[0, 1] > 0.95
    assert abs(np.corrcoef(part[inner], slow[inner])[0, 1]) < 0.2
    gappy = slow + fast
    gappy[100:104] = np.nan
    part = fast_part(gappy, 25.0)
    assert np.isnan(part[100:104]).all() and np.isfinite(part[:100]).all() and np.isfinite(part[104:]).all()
