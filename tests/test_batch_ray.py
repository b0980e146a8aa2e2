"""``dub batch --ray``: six items (one bad) on a local Ray started by the test: exit 3, the five outputs identical
to the single-process batch's, the bad item a one-line failure, ``--skip-existing`` honoured by the workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dubber.cli.app import run
from tests.media_factory import make_audio, make_face_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("jobs")
    rows = ["video,audio,output"]
    for i in range(5):
        video = make_face_video(folder / f"face{i}.mp4", frames=6 + 2 * i)
        speech = make_audio(folder / f"speech{i}.wav", seconds=0.2 + 0.08 * i)
        rows.append(f"{video},{speech},{i}.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    rows.append(f"{folder / 'broken.mp4'},{folder / 'speech0.wav'},broken.mp4")
    (folder / "jobs.csv").write_text("\n".join(rows) + "\n")
    return folder / "jobs.csv"


def batch(jobs: Path, out: Path, *extra: str) -> int:
    return run(["batch", str(jobs), "-o", str(out), "--weights", TINY_BUNDLE, "--json", "--steps", "1", *extra])


def test_a_batch_on_ray_matches_the_single_process_batch(local_ray, jobs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    assert batch(jobs, tmp_path / "single") == 3
    capsys.readouterr()
    assert batch(jobs, tmp_path / "ray", "--ray", "local") == 3
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    summary = lines[-1]
    assert summary["summary"] and (summary["ok"], summary["failed"]) == (5, 1)
    (failed,) = [x for x in lines[:-1] if x["status"] == "failed"]
    assert failed["video"].endswith("broken.mp4") and "\n" not in failed["error"]
    assert not (tmp_path / "ray" / "broken.mp4").exists()
    for i in range(5):
        single, spread = (tmp_path / d / f"{i}.mp4" for d in ("single", "ray"))
        assert spread.read_bytes() == single.read_bytes(), f"item {i} differs"
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [f"{i}.mp4" for i in range(5)]  # no temp files
    # The workers look at each output before dubbing it.
    assert batch(jobs, tmp_path / "ray", "--ray", "local", "--skip-existing") == 3
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["skipped"], summary["failed"], summary["ok"]) == (5, 1, 0)
