"""`dub prep`: sources, one clip's arrays with a fake face backend, the resumable dataset run, and the real CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dubber.data import PrepCache, PrepOptions, prepare_clip, prepare_dataset, read_sources
from dubber.data.prep_clip import FLAG_NO_FACE, FLAG_SCENE_CUT, is_done, read_record
from dubber.data.sources import ClipSource, clip_id_for
from dubber.errors import InputError
from dubber.face import FaceTracker
from dubber.media import VideoReader, probe_media
from tests.fake_faces import SquareFaces
from tests.media_factory import make_video


def _square_frames(missing: range = range(0)):
    def frame(i: int, w: int, h: int) -> np.ndarray:
        img = np.full((h, w, 3), 40, np.uint8)
        if i not in missing:
            x = 60 + i  # the face drifts right by a pixel a frame
            img[40:120, x : x + 80] = 255
        return img

    return frame


def _clip(tmp_path: Path, name: str = "a.mp4", frames: int = 30, missing: range = range(0), audio: bool = True) -> Path:
    return make_video(
        tmp_path / name,
        fps=Fraction(25),
        frames=frames,
        width=240,
        height=160,
        audio_rate=16000 if audio else None,
        frame_fn=_square_frames(missing),
    )


def test_clip_ids_are_unique_and_safe():
    assert clip_id_for("train/grid_s1/bbaf2n.mp4") == "train__grid_s1__bbaf2n"
    assert clip_id_for("dev/x y/é.mov") == "dev__x_y"
    assert "/" not in clip_id_for("a/b/c.d.mp4")


def test_read_sources_from_a_manifest_keeps_split_and_speaker(tmp_path):
    (tmp_path / "clips").mkdir()
    for n in ("x.mp4", "y.mp4", "z.mp4"):
        (tmp_path / "clips" / n).write_bytes(b"")
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "split", "speaker", "seconds"])
        w.writerows(
            [["clips/x.mp4", "train", "ann", 3], ["clips/y.mp4", "dev", "bob", 3], ["clips/z.mp4", "wild", "", 1]]
        )
    all_clips = read_sources(tmp_path / "m.csv")
    assert [(c.split, c.speaker) for c in all_clips] == [("train", "ann"), ("dev", "bob"), ("wild", "clips")]
    assert all_clips[0].path == tmp_path / "clips" / "x.mp4"
    assert [c.speaker for c in read_sources(tmp_path / "m.csv", {"train", "dev"})] == ["ann", "bob"]
    with pytest.raises(InputError, match="no clips"):
        read_sources(tmp_path / "m.csv", {"test"})


def test_first_per_speaker_keeps_each_speakers_first_clips_in_order():
    from dubber.data.sources import ClipSource, first_per_speaker

    clips = [ClipSource(f"c{i}", Path(f"c{i}.mp4"), "dev", speaker) for i, speaker in enumerate("aabacbb")]
    assert [c.clip_id for c in first_per_speaker(clips, 1)] == ["c0", "c2", "c4"]
    assert [c.clip_id for c in first_per_speaker(clips, 2)] == ["c0", "c1", "c2", "c4", "c5"]
    assert first_per_speaker(clips, 0) == clips


def test_read_sources_from_a_folder(tmp_path):
    for rel in ("train/ann/1.mp4", "dev/bob/2.mp4", "other/carl/3.mov", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    clips = {c.clip_id: c for c in read_sources(tmp_path)}
    assert set(clips) == {"train__ann__1", "dev__bob__2", "other__carl__3"}
    assert clips["train__ann__1"].split == "train" and clips["dev__bob__2"].split == "dev"
    assert clips["other__carl__3"].speaker == "carl" and clips["other__carl__3"].split in ("train", "dev")
    with pytest.raises(InputError, match="no such"):
        read_sources(tmp_path / "missing")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no video files"):
        read_sources(tmp_path / "empty_dir")


def test_prepare_clip_arrays_and_crops(tmp_path):
    src = _clip(tmp_path, frames=30, missing=range(10, 14))
    cache = tmp_path / "cache"
    with FaceTracker(SquareFaces()) as tracker:
        rec = prepare_clip(ClipSource("a", src, "train", "ann"), cache, PrepOptions(sizes=(64, 128)), tracker)
    assert rec.status == "ok", rec.reason
    assert (rec.frames, rec.face_frames, rec.fps, rec.has_audio) == (30, 26, 25.0, True)
    assert rec.flag_counts["no_face"] == 4
    z = np.load(cache / "clips" / "a" / "track.npz")
    assert z["crop_points"].shape == (30, 478, 2) and z["crop_points"].dtype == np.float16
    assert z["frame_points"].shape == (30, 131, 2)
    assert np.all((z["flags"][10:14] & FLAG_NO_FACE) != 0) and not np.any(z["flags"][:10] & FLAG_NO_FACE)
    assert np.isnan(z["crop_points"][11]).all() and np.isfinite(z["crop_points"][0]).all()
    np.testing.assert_allclose(z["times"], np.arange(30) / 25, atol=1e-6)
    assert abs(len(z["mel"]) - (1 + 30 / 25 * 80)) <= 3
    # In crop units the drifting square's face stays put, up to the smoothed crop's lag.
    ok = z["crop_points"][(z["flags"] & FLAG_NO_FACE) == 0].astype(np.float32)
    assert np.abs(ok - ok.mean(0)).max() < 0.05
    # Crop and frame coordinates describe the same points.
    from dubber.face import ALL_INDICES, FaceAligner, Similarity

    tf = Similarity(*z["transforms"][5])
    back = FaceAligner(1).to_frame(z["crop_points"][5].astype(np.float32), tf)[list(ALL_INDICES)]
    np.testing.assert_allclose(back, z["frame_points"][5], atol=0.2)
    for size in (64, 128):
        crops = list(VideoReader(cache / "clips" / "a" / f"crops_{size}.mp4"))
        assert len(crops) == 30 and crops[0].image.shape == (size, size, 3)
        assert crops[11].image.max() < 20  # no face: a black crop
        assert crops[0].image.mean() > 100  # the white square fills most of the crop
    assert is_done(cache, ClipSource("a", src, "train", "ann"), PrepOptions(sizes=(64,)))
    assert not is_done(cache, ClipSource("a", src, "train", "ann"), PrepOptions(sizes=(256,)))


def test_bad_clips_become_skipped_records(tmp_path):
    cache = tmp_path / "cache"
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    faceless = _clip(tmp_path, "faceless.mp4", frames=10, missing=range(10))
    with FaceTracker(SquareFaces()) as tracker:
        r1 = prepare_clip(ClipSource("bad", bad, "train", "x"), cache, PrepOptions(), tracker)
        r2 = prepare_clip(ClipSource("faceless", faceless, "train", "x"), cache, PrepOptions(), tracker)
    assert r1.status == "skipped" and "bad.mp4" not in r1.reason and r1.reason
    assert r2.status == "skipped" and r2.reason == "no face found in any frame"
    assert not list((cache / "clips" / "faceless").glob("*.mp4"))
    assert not list((cache / "clips").rglob("*.partial*"))


def test_prepare_dataset_is_resumable_and_writes_a_manifest(tmp_path, monkeypatch):
    import dubber.face.tracker as tracker_mod

    monkeypatch.setattr(tracker_mod.FaceTracker, "__init__", _fake_tracker_init(tracker_mod.FaceTracker.__init__))
    sources = [
        ClipSource("a", _clip(tmp_path, "a.mp4"), "train", "ann"),
        ClipSource("b", _clip(tmp_path, "b.mp4", audio=False), "train", "bob"),
        ClipSource("c", _clip(tmp_path, "c.mp4", frames=40), "dev", "cat"),
        ClipSource("d", tmp_path / "missing.mp4", "dev", "dan"),
    ]
    cache = tmp_path / "cache"
    seen = []
    summary = prepare_dataset(sources, cache, jobs=1, progress=lambda r, done, total: seen.append((done, total)))
    assert (summary.ok, summary.skipped, summary.prepared_now, summary.already_done) == (3, 1, 4, 0)
    assert seen[-1] == (4, 4)
    assert summary.splits["train"]["clips"] == 2 and summary.splits["train"]["with_audio"] == 1
    assert summary.splits["dev"]["speakers"] == 1
    assert list(summary.skipped_reasons.values()) == [1]
    rows = list(csv.DictReader(open(cache / "manifest.csv")))
    assert [r["clip_id"] for r in rows] == ["a", "b", "c", "d"]
    assert json.loads((cache / "prep.json").read_text())["ok"] == 3
    mtime = (cache / "clips" / "a" / "track.npz").stat().st_mtime_ns
    again = prepare_dataset(sources, cache, jobs=1)
    assert (again.prepared_now, again.already_done, again.ok) == (0, 4, 3)
    assert (cache / "clips" / "a" / "track.npz").stat().st_mtime_ns == mtime
    pc = PrepCache(cache)
    assert [r.clip_id for r in pc.records("train", with_audio=True)] == ["a"]
    track = pc.load(pc.records("dev")[0])
    assert len(track) == 40 and track.usable.all() and track.mel.dtype == np.float32
    assert read_record(cache, "d").status == "skipped"


def _fake_tracker_init(original):
    def init(self, backend=None, options=None, aligner=None):
        original(self, backend or SquareFaces(), options, aligner)

    return init


def test_prep_cli_real_faces_in_parallel(tmp_path):
    """The real command: MediaPipe on the astronaut sample, two worker processes, a corrupt file, then a resume."""
    pytest.importorskip("skimage")
    src = tmp_path / "clips" / "nasa"
    src.mkdir(parents=True)
    sample = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "examples" / "make_sample.py"), str(src / "a.mp4")],
        capture_output=True,
        text=True,
    )
    assert sample.returncode == 0, sample.stderr
    (src / "b.mp4").write_bytes((src / "a.mp4").read_bytes())
    (src / "broken.mp4").write_bytes((src / "a.mp4").read_bytes()[:3000])
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "dubber", "prep", str(tmp_path / "clips"), "-o", str(cache), "-j", "2", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["ok"] == 2 and summary["skipped"] == 1 and summary["jobs"] == 2
    assert summary["speech_features_made"] == 2  # the shipped speech encoder's features, for speech completers
    frames = probe_media(src / "a.mp4").video.frame_count
    track = PrepCache(cache).load(PrepCache(cache).records()[0], "whisper-tiny.en.layer3")
    assert len(track) == frames and track.usable.mean() > 0.95
    assert track.speech.shape == (1 + int(track.record.seconds * 16000) // 320, 384)
    assert not np.any(track.flags & FLAG_SCENE_CUT)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["already_done"] == 3
    assert json.loads(rerun.stdout)["speech_features_made"] == 0
    missing = subprocess.run(cmd[:4] + [str(tmp_path / "nope"), "-o", str(cache)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr and "Traceback" not in missing.stderr


def test_preparing_another_split_adds_to_the_cache_manifest(tmp_path):
    from dubber.data.cache import PrepCache
    from dubber.data.prep import write_manifest
    from dubber.data.prep_clip import PrepOptions
    from dubber.data.sources import ClipSource
    from tests.synthetic_cache import make_cache

    cache = make_cache(tmp_path / "c", {"ann": "train", "cat": "video_only"}, clips_per_speaker=1, frames=10)
    assert {r.split for r in PrepCache(cache).records()} == {"train", "video_only"}
    # A later run over the video_only source alone (as `dub prep --splits video_only` does) keeps the train clip.
    only = [ClipSource("cat_0", tmp_path / "cat_0.mp4", "video_only", "cat")]
    summary = write_manifest(only, cache, PrepOptions(), 1, 0, 1, 0.0)
    assert {r.split for r in PrepCache(cache).records()} == {"train", "video_only"}
    assert set(summary.splits) == {"train", "video_only"}
