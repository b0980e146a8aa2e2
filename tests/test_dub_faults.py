"""A corpus of bad inputs and interruptions, made at test time: each case gives one line naming the file and the
problem, the right exit code, and leaves nothing at the destination or in TMPDIR."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from dubber.cli.app import run
from dubber.media import probe_media
from tests.media_factory import face_frame, make_audio, make_face_video, make_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(autouse=True)
def _tiny_weights(tiny_root, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """TMPDIR for the code under test: what a dub leaves there is visible."""
    folder = tmp_path / "TMPDIR"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _damage(path: Path, start: int = 10, stop: int = 20) -> None:
    data = bytearray(path.read_bytes())
    data[start:stop] = b"X" * (stop - start)
    path.write_bytes(bytes(data))


def _copy_bundle(root: Path, dest: Path, with_manifest: bool) -> Path:
    """The tiny bundle as a --weights folder of its own (``dest/tiny``), its manifest beside it when asked."""
    import shutil

    shutil.copytree(root / TINY_BUNDLE, dest / TINY_BUNDLE)
    if with_manifest:
        shutil.copy(root / "manifest.json", dest / "manifest.json")
    return dest / TINY_BUNDLE


def _fault_cases(tmp: Path, root: Path) -> dict[str, tuple[list, int, str, Path | None]]:
    """name -> (dub arguments, exit code, text the one-line message holds, the file it must name if any)."""
    face = make_face_video(tmp / "face.mp4", frames=8)
    speech = make_audio(tmp / "s.wav", seconds=0.3)
    blocker = tmp / "existing.mp4"
    blocker.write_bytes(b"a file where a folder is expected")
    (tmp / "outdir").mkdir()
    header = _copy_bundle(root, tmp / "header", with_manifest=False)
    _damage(header / "landmarks" / "model.safetensors")
    unet = _copy_bundle(root, tmp / "unet", with_manifest=False)
    _damage(unet / "renderer" / "unet" / "diffusion_pytorch_model.safetensors")
    data = _copy_bundle(root, tmp / "data", with_manifest=True)  # damaged past the header: only a checksum sees it
    _damage(data / "landmarks" / "model.safetensors", -40, -30)
    out = tmp / "o.mp4"
    return {
        "--face beyond the faces shown": ([face, "-a", speech, "-o", out, "--face", "5"], 2, "at most 1", face),
        "--face neither a number nor a side": (
            [face, "-a", speech, "-o", out, "--face", "middle"],
            2,
            "left or right",
            None,
        ),
        "output's folder is a file": (
            [face, "-a", speech, "-o", blocker / "o.mp4"],
            2,
            "is a file, not a folder",
            blocker,
        ),
        "output is a folder": ([face, "-a", speech, "-o", tmp / "outdir"], 2, "is a folder", tmp / "outdir"),
        "output is the input": ([face, "-a", speech, "-o", face], 2, "is one of the inputs", face),
        "output is the input, --overwrite": (
            [face, "-a", speech, "-o", face, "--overwrite"],
            2,
            "is one of the inputs",
            face,
        ),
        "damaged completer header": (
            [face, "-a", speech, "-o", out, "-w", header],
            1,
            "damaged",
            header / "landmarks" / "model.safetensors",
        ),
        "damaged renderer header": (
            [face, "-a", speech, "-o", out, "-w", unet],
            1,
            "damaged",
            unet / "renderer" / "unet" / "diffusion_pytorch_model.safetensors",
        ),
        "damaged data, manifest beside": (
            [face, "-a", speech, "-o", out, "-w", data],
            1,
            "sha256 does not match",
            data / "landmarks" / "model.safetensors",
        ),
        "float16 on the CPU": (
            [face, "-a", speech, "-o", out, "--dtype", "float16", "--device", "cpu"],
            2,
            "--dtype float16 is not served on the CPU",
            None,
        ),
    }


def test_each_fault_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, tiny_root, private_tmp, capsys):
    cases = _fault_cases(tmp_path, tiny_root)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for name, (args, code, text, named) in cases.items():
        weights = [] if "-w" in args else ["--weights", TINY_BUNDLE]
        assert run(["video", *map(str, args), *weights]) == code, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and text in err and str(named or "") in err, f"{name}: {err!r}"
        assert not (tmp_path / "o.mp4").exists() and not list(private_tmp.iterdir()), name
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, f"{name} left files behind"


def test_a_batch_names_each_failure_with_its_index(tmp_path, capfd):
    make_video(tmp_path / "a.mp4", frames=5)
    make_audio(tmp_path / "a.wav", seconds=0.2)
    (tmp_path / "blocker").write_bytes(b"x")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("video,audio,output\na.mp4,a.wav,ok.mp4\na.mp4,a.wav,blocker/no.mp4\nnone.mp4,a.wav,n.mp4\n")
    assert run(["batch", str(manifest), "--weights", TINY_BUNDLE]) == 3
    err = capfd.readouterr().err.splitlines()  # printed while fd 2 is diverted: capture at the fd level
    assert any(line.startswith("[2/3] failed:") and "blocker is a file" in line for line in err), err
    assert any(line.startswith("[3/3] failed:") and "none.mp4" in line for line in err), err
    assert err[-1] == "batch: 1 dubbed, 0 skipped, 2 failed"


# -- interruptions ---------------------------------------------------------------------------------------------------
def _start(args: list, tmpdir: Path, weights: Path) -> subprocess.Popen:
    env = {**os.environ, "DUB_WEIGHTS": str(weights), "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "dubber", *map(str, args), "--weights", TINY_BUNDLE, "--steps", "1"]
    # A shell's background job, as a CI runner may start the suite, ignores SIGINT, and a child would inherit that:
    # the dub gets Ctrl-C's default handling back, as in a terminal.
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the dub ended (code {proc.returncode}) before it could be interrupted"
        assert time.monotonic() < end, "timed out waiting for the dub to get going"
        time.sleep(0.05)


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> tuple[Path, Path]:
    """Long enough (10 s) that a dub is still writing when it is interrupted."""
    folder = tmp_path_factory.mktemp("long")
    video = make_video(folder / "long.mp4", frames=250, width=192, height=192, frame_fn=face_frame)
    return video, make_audio(folder / "speech.wav", seconds=10.0)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["Ctrl-C", "SIGTERM", "SIGHUP"])
def test_a_terminated_dub_removes_its_partial_output_and_feature_files(tmp_path, tiny_root, long_clip, signum):
    video, speech = long_clip
    tmpdir, out = tmp_path / "TMPDIR", tmp_path / "out" / "dub.mp4"
    tmpdir.mkdir()
    out.parent.mkdir()
    proc = _start([video, "-a", speech, "-o", out], tmpdir, tiny_root)
    _wait_for(lambda: _partials(out.parent) and list(tmpdir.glob("dubber-rows-*")), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err  # 130 for Ctrl-C
    said = "interrupted" if signum == signal.SIGINT else f"interrupted ({signal.Signals(signum).name})"
    assert said in err
    assert not list(out.parent.iterdir()) and not list(tmpdir.iterdir())


def test_a_terminated_batch_keeps_finished_outputs_and_prints_its_summary(tmp_path, tiny_root, long_clip):
    video, speech = long_clip
    short = make_video(tmp_path / "short.mp4", frames=5)
    tmpdir, out = tmp_path / "TMPDIR", tmp_path / "out"
    tmpdir.mkdir()
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"video,audio,output\n{short},{speech},a.mp4\n{video},{speech},b.mp4\n{short},{speech},c.mp4\n")
    proc = _start(["batch", manifest, "-o", out, "--json"], tmpdir, tiny_root)
    _wait_for(lambda: (out / "a.mp4").exists() and _partials(out), proc)
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert lines[0]["status"] == "ok"
    assert lines[-1] == {
        "summary": True,
        "items": 3,
        "ok": 1,
        "skipped": 0,
        "failed": 0,
        "interrupted": True,
        "not_done": 2,
    }
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"] and not list(tmpdir.iterdir())


def test_a_finished_dub_exits_without_teardown_and_leaves_its_output_and_whole_json(tmp_path, tiny_root):
    """``finish`` ends a process that loaded torch with ``os._exit``: what was written and printed is all there."""
    video = make_face_video(tmp_path / "face.mp4", frames=12)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.4)
    tmpdir, out = tmp_path / "TMPDIR", tmp_path / "out" / "dub.mp4"
    tmpdir.mkdir()
    out.parent.mkdir()
    proc = _start([video, "-a", speech, "-o", out, "--json"], tmpdir, tiny_root)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(stdout)
    assert result["frames"] == 10 and Path(result["output"]) == out
    assert probe_media(out).video.frame_count == 10
    assert not list(tmpdir.iterdir()) and [p.name for p in out.parent.iterdir()] == ["dub.mp4"]


def test_finish_skips_the_teardown_only_where_nothing_else_needs_it(monkeypatch):
    from dubber.cli import app

    class Ended(Exception):
        pass

    def ending(how):
        def end(code):
            raise Ended(how, code)

        return end

    monkeypatch.setattr(app.os, "_exit", ending("_exit"))
    monkeypatch.setattr(app.sys, "exit", ending("exit"))
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    with pytest.raises(Ended) as ended:
        app.finish(3)  # the tests have torch loaded
    assert ended.value.args == ("_exit", 3)
    monkeypatch.setitem(sys.modules, "ray", object())
    with pytest.raises(Ended) as ended:
        app.finish(0)  # after a Ray batch: Ray's exit handler stops the local cluster it started
    assert ended.value.args == ("exit", 0)
    monkeypatch.delitem(sys.modules, "ray")
    monkeypatch.setitem(sys.modules, "coverage", object())
    with pytest.raises(Ended) as ended:
        app.finish(0)  # under coverage.py, which writes its data at exit
    assert ended.value.args == ("exit", 0)
    monkeypatch.delitem(sys.modules, "coverage")
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    with pytest.raises(Ended) as ended:
        app.finish(0)  # a rank of a distributed training run: its process group ends at exit
    assert ended.value.args == ("exit", 0)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    busy = threading.Event()
    worker = threading.Thread(target=busy.wait)
    worker.start()
    try:
        with pytest.raises(Ended) as ended:
            app.finish(1)  # a thread still running: the interpreter waits for it
    finally:
        busy.set()
        worker.join()
    assert ended.value.args == ("exit", 1)


# -- smaller faults ----------------------------------------------------------------------------------------------
def test_a_tiny_face_is_warned_about_and_odd_sizes_are_reported(tmp_path, capfd):
    video = make_video(tmp_path / "small.mp4", frames=6, width=41, height=41, frame_fn=face_frame, pix_fmt="yuv444p")
    speech = make_audio(tmp_path / "s.wav", seconds=0.24)
    assert (
        run(["video", str(video), "-a", str(speech), "-o", str(tmp_path / "o.mp4"), "-v", "--weights", TINY_BUNDLE])
        == 0
    )
    err = capfd.readouterr().err
    assert "small.mp4: the face is about" in err and "barely changes" in err
    assert "41x41 is written as 42x42" in err
    warning = next(line for line in err.splitlines() if "the face is about" in line)
    assert warning.startswith("WARNING: ") and len(warning) > 80  # one unwrapped, unpadded line off a terminal


def test_env_and_the_weights_list_print_to_stdout_readably(capfd, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert run(["env"]) == 0
    out = capfd.readouterr()
    assert out.out.startswith("python ") and "torch" in out.out and not out.err
    assert run(["weights", "list"]) == 0
    listing = capfd.readouterr().out.splitlines()
    assert listing[0].startswith("weights in ") and f"{TINY_BUNDLE}/renderer" in "\n".join(listing)
    assert all(len(line) <= 80 for line in listing[1:]) and all(line == line.rstrip() for line in listing)
