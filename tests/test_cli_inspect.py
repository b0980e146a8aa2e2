"""The real `dub` command in a subprocess: inspect output, preview file, and every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path
from media_factory import make_audio, make_video

from dubber.media import probe_media


def dub(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "dubber", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_version_and_help():
    r = dub("--version")
    assert r.returncode == 0 and r.stdout.startswith("dubber ")
    r = dub("--help")
    assert r.returncode == 0 and "inspect" in r.stdout


def test_inspect_json_on_a_video_without_faces(tmp_path):
    video = make_video(tmp_path / "noface.mp4", frames=30, width=128, height=96, audio_rate=16000)
    r = dub("inspect", video, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["frames"] == 30 and report["frames_with_face"] == 0 and report["face_ratio"] == 0
    assert report["no_face_spans"] == [{"start_frame": 0, "end_frame": 30, "start": 0.0, "end": 1.2}]
    assert report["media"]["video"]["fps"] == "25/1"
    assert report["media"]["audio"]["sample_rate"] == 16000
    assert report["median_face_size"] is None


def test_inspect_table_goes_to_stderr(tmp_path):
    video = make_video(tmp_path / "v.mkv", frames=10)
    r = dub("inspect", video)
    assert r.returncode == 0 and r.stdout == ""
    assert "frames with a face" in r.stderr and "0/10" in r.stderr


@pytest.mark.shared_data
def test_inspect_real_clip_with_preview(shared_manifest, tmp_path):
    row = next(r for r in shared_manifest if r["split"] == "dev" and r["speaker"] != "grid_s1")
    src = shared_path(row)
    preview = tmp_path / "overlay.mp4"
    r = dub("inspect", src, "--json", "--preview", preview)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["face_ratio"] >= 0.95
    assert 30 < report["median_face_size"] < 2000
    yaw = report["yaw_range"]
    assert -90 < yaw[0] <= yaw[1] < 90
    src_info, out_info = probe_media(src), probe_media(preview)
    assert out_info.video.frame_count == src_info.video.frame_count
    assert out_info.video.fps == src_info.video.fps
    assert out_info.audio is not None  # the source's audio is carried over
    # Refuses to overwrite the preview, and leaves it untouched.
    before = preview.read_bytes()
    r = dub("inspect", src, "--preview", preview)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert preview.read_bytes() == before


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    truncated = make_video(tmp / "truncated.mp4", frames=60, faststart=True)
    truncated.write_bytes(truncated.read_bytes()[:-4000])
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    audio_only = make_audio(tmp / "speech.m4a")
    folder = tmp / "folder.mp4"
    folder.mkdir()
    return {
        "truncated": (truncated, "truncated"),
        "text": (text, "not a media file"),
        "empty": (empty, "file is empty"),
        "audio-only": (audio_only, "no video stream"),
        "missing": (tmp / "missing.mp4", "no such file"),
        "folder": (folder, "is a folder"),
    }


@pytest.mark.parametrize("case", ["truncated", "text", "empty", "audio-only", "missing", "folder"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    path, message = _bad_inputs(inputs)[case]
    out = tmp_path / "out"
    out.mkdir()
    r = dub("inspect", path, "--preview", out / "preview.mp4", "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert str(path) in lines[0] and message in lines[0] and "Traceback" not in r.stderr
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = make_video(tmp_path / "locked.mp4", frames=5)
    path.chmod(0)
    r = dub("inspect", path)
    assert r.returncode == 2 and "permission denied" in r.stderr


def test_unsupported_preview_type(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=5)
    r = dub("inspect", video, "--preview", tmp_path / "p.avi")
    assert r.returncode == 2 and "unsupported output type" in r.stderr
    assert not (tmp_path / "p.avi").exists()


def test_usage_errors_exit_2():
    assert dub("inspect").returncode == 2
    assert dub("inspect", "x.mp4", "--bogus").returncode == 2
    assert dub("nonsense-command").returncode == 2


def test_demo_sample_has_a_trackable_face(tmp_path):
    pytest.importorskip("skimage")
    root = Path(__file__).resolve().parents[1]
    sample = tmp_path / "astronaut.mp4"
    made = subprocess.run([sys.executable, root / "examples" / "make_sample.py", sample], capture_output=True)
    assert made.returncode == 0, made.stderr
    r = dub("inspect", sample, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["frames"] == 100 and report["face_ratio"] >= 0.95 and report["people"] == 1
    assert report["media"]["audio"]["duration"] == pytest.approx(4.0, abs=0.05)
