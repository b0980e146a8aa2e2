"""A photo's reference landmarks: its own face at the typical mouth openings of speech."""

from __future__ import annotations

import numpy as np
import pytest

from dubber.face.aligner import canonical_face
from dubber.face.landmarks import ALL_INDICES, CONTENT_INDICES, N_POSE, mouth_opening
from dubber.face.speaking_mouths import photo_references, speaking_mouths


def face_points() -> np.ndarray:
    """The mean face's 131 model points (pose, jaw, outer lips, inner lips), mouth closed."""
    return canonical_face()[list(ALL_INDICES)].astype(np.float32)


def openings(sets: np.ndarray) -> np.ndarray:
    return mouth_opening(sets[:, N_POSE:], CONTENT_INDICES)


def test_the_shipped_table_runs_from_closed_to_wide():
    displacements, typical = speaking_mouths()
    assert displacements.shape == (15, 57, 2) and typical.shape == (15,)
    assert np.all(np.diff(typical) > 0) and typical[0] < 0.02 < 0.2 < typical[-1]
    np.testing.assert_allclose(displacements[0], 0, atol=1e-6)  # each rank is measured from the closed mouth


def test_a_closed_photo_keeps_its_face_and_opens_along_the_table():
    photo = face_points()
    sets = photo_references(photo, 15)
    assert sets.shape == (15, 131, 2) and sets.dtype == np.float32
    np.testing.assert_array_equal(sets[:, :N_POSE], np.repeat(photo[None, :N_POSE], 15, 0))  # the pose is the photo's
    assert np.all(np.diff(openings(sets)) > 0)
    own = int(np.argmin(np.abs(speaking_mouths()[1] - openings(photo[None])[0])))
    np.testing.assert_allclose(sets[own], photo, atol=1e-6)  # the photo sits at its own opening


def test_a_wide_open_photo_is_placed_at_the_middle_of_the_range():
    """An open mouth (a smile, a word) is taken for the speaker's middle opening, not their widest: the plan then
    moves about it instead of mostly closing it."""
    displacements, typical = speaking_mouths()
    wide = face_points()
    wide[N_POSE:] += displacements[-1]  # the table's widest mouth on the mean face
    sets = photo_references(wide, 15)
    middle = int(np.argmin(np.abs(typical - (typical[0] + typical[-1]) / 2)))
    assert 0 < middle < 14
    np.testing.assert_allclose(sets[middle], wide, atol=1e-6)
    assert openings(sets)[0] < openings(wide[None])[0] < openings(sets)[-1]


@pytest.mark.parametrize("count", [1, 4, 15, 20])
def test_any_count_spreads_over_the_table(count):
    sets = photo_references(face_points(), count)
    assert sets.shape == (count, 131, 2)
    full = photo_references(face_points(), 15)
    np.testing.assert_array_equal(sets[0], full[0])
    if count > 1:
        np.testing.assert_array_equal(sets[-1], full[-1])
        assert np.all(np.diff(openings(sets)) >= 0)


def test_a_photo_dub_gives_the_completer_the_photos_references_and_no_spread(tmp_path, monkeypatch):
    import cv2

    from dubber import DubbingPipeline
    from tests.media_factory import face_frame, make_audio, make_face_video
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    photo = tmp_path / "portrait.png"
    cv2.imwrite(str(photo), face_frame(0, 192, 192)[:, :, ::-1])
    speech = make_audio(tmp_path / "speech.wav", seconds=1.0)
    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")
    analysis = pipe.analyse(photo)
    n = pipe.landmarks.config.n_refs
    np.testing.assert_array_equal(analysis.landmark_references(n), photo_references(analysis.points[0], n))
    result = pipe(photo, speech, tmp_path / "still.mp4", crf=0, preset="ultrafast", analysis=analysis)
    assert result.settings["articulation_gain"] == 1.0
    video = make_face_video(tmp_path / "clip.mp4", frames=12)
    track = pipe.analyse(video)  # a video's references are its own tracked frames
    own = {tuple(points.ravel()) for points in track.points[track.has_face]}
    assert all(tuple(ref.ravel()) in own for ref in track.landmark_references(n))


def _script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fit_weighs_speakers_not_clips():
    """One speaker (GRID s1) holds most train clips: the table is the median of the speakers' medians."""
    fit = _script("fit_speaking_mouths")
    many, few = np.zeros((15, 57, 2)), np.ones((15, 57, 2))
    table = fit._median_of_speakers({"grid": [many] * 50, "a": [few], "b": [few * 1.2]})
    np.testing.assert_allclose(table, 1.0)


def test_still_split_compares_clip_by_clip_with_an_earlier_run():
    still_split = _script("still_split")
    rows = [{"clip": c, "dub": {"opening_correlation": v}} for c, v in (("a", 0.5), ("b", 0.7), ("c", 0.2))]
    earlier = [{"clip": c, "1.17": {"opening_correlation": v}} for c, v in (("a", 0.3), ("b", 0.6), ("d", 0.9))]
    out = still_split.paired(rows, earlier, "1.17")["opening_correlation"]
    assert out["clips"] == 2 and out["mean"] == pytest.approx(0.15) and out["se"] == pytest.approx(0.05)
