"""Overlapped stages: the thread helpers on their own, the first pass and a dub whose stages overlap against the same
run one stage after another (same track, same bytes; an error in any stage leaves no output and no thread behind)."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dubber.face import FaceAligner, FaceTracker
from dubber.face.backends import make_backend
from dubber.media import VideoReader
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.landmark_sequence import predict_sequence
from dubber.pipeline.analysis import analyse_video
from dubber.pipeline.frame_source import FrameSpool
from dubber.pipeline.overlap import Consumer, Prefetcher
from dubber.render import hint_warp
from dubber.render.hint_warp import _kernel, _spline_read
from dubber.render.mouth_guard import _gaussian_blur
from tests.dub_checks import no_partials
from tests.media_factory import make_audio, make_face_video
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights


# -- the helpers --------------------------------------------------------------------------------------------------
def test_prefetcher_yields_in_order_and_raises_the_source_error_where_it_is_reached():
    def source():
        yield from range(5)
        raise OSError("disk gone")

    got = []
    with Prefetcher(source(), depth=2) as items, pytest.raises(OSError, match="disk gone"):
        for x in items:
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_prefetcher_stops_its_worker_when_the_consumer_leaves_early():
    made = []

    def source():
        for i in range(1000):
            made.append(i)
            yield i

    before = threading.active_count()
    with Prefetcher(source(), depth=2) as items:
        for x in items:
            if x == 3:
                break
    assert threading.active_count() == before
    assert len(made) <= 3 + 1 + 2 + 1  # what was taken, in hand, queued, and one waiting for room


def test_consumer_handles_in_order_and_hands_its_error_back():
    seen = []
    consumer = Consumer(seen.append, depth=1)
    for i in range(20):
        consumer.submit(i)
    consumer.finish()
    assert seen == list(range(20))

    def fail(x):
        if x == 2:
            raise ValueError("encoder broke")
        time.sleep(0.01)

    consumer = Consumer(fail, depth=1)
    with pytest.raises(ValueError, match="encoder broke"):
        for i in range(50):
            consumer.submit(i)
        consumer.finish()


def test_the_first_pass_overlapped_is_the_sequential_track(tmp_path):
    """Decoding and ``prepare`` ahead of the tracker, ``observe`` and the spool behind it: the same track, pool
    and spool as one frame after another."""
    clip = make_face_video(tmp_path / "face.mp4", frames=40, no_face=range(25, 29))
    wanted = [0, 7, 26, 39]
    tracks, spools = {}, {}
    for overlap in (False, True):
        spools[overlap] = FrameSpool(192, 192, wanted, tmp_path)
        seen: list[int] = []
        with FaceTracker(make_backend("mediapipe")) as tracker:
            tracks[overlap] = analyse_video(
                VideoReader(clip),
                tracker,
                FaceAligner(128),
                spool=spools[overlap],
                progress=seen.append,
                overlap=overlap,
            )
        assert seen == list(range(1, 41))
    one, both = tracks[False], tracks[True]
    for name in ("times", "has_face", "transforms", "points", "opening", "frontal", "yaw"):
        np.testing.assert_array_equal(getattr(both, name), getattr(one, name))
    assert not both.has_face[25:29].any() and both.has_face.sum() == 36
    assert both.pool.entries.keys() == one.pool.entries.keys()
    for key, entry in one.pool.entries.items():
        np.testing.assert_array_equal(both.pool.entries[key].crop, entry.crop)
    for i in wanted:
        np.testing.assert_array_equal(spools[True].read(i).data, spools[False].read(i).data)


def test_an_error_behind_the_tracker_is_raised_and_leaves_no_thread(tmp_path):
    clip = make_face_video(tmp_path / "face.mp4", frames=30)

    class FullDisk(FrameSpool):
        def offer(self, index, image):
            if index == 12:
                raise OSError("no space left on device")
            super().offer(index, image)

    before = threading.active_count()
    with pytest.raises(OSError, match="no space left"), FaceTracker(make_backend("mediapipe")) as tracker:
        analyse_video(
            VideoReader(clip), tracker, FaceAligner(128), spool=FullDisk(192, 192, [3, 20], tmp_path), overlap=True
        )
    assert threading.active_count() == before


# -- the work each stage does less of -----------------------------------------------------------------------------
def test_blocked_spline_equals_the_dense_formula(monkeypatch):
    g = torch.Generator().manual_seed(0)
    b, n, size = 3, 20, 24
    ctrl = torch.rand(b, n, 2, generator=g)
    coef = torch.randn(b, n + 3, 2, generator=g) * 0.01
    axis = torch.arange(size, dtype=torch.float32) / size
    ctrl[0, 0] = torch.stack([axis[3], axis[5]])  # on a pixel centre: U(0) = 0, not log(0)'s NaN
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(1, -1, 2).expand(b, -1, -1)
    basis = torch.cat([_kernel(grid, ctrl), torch.ones_like(grid[..., :1]), grid], -1)
    dense = (grid + basis @ coef).reshape(b, size, size, 2)
    torch.testing.assert_close(_spline_read(ctrl, coef, size), dense, atol=1e-5, rtol=0)
    for block in (64, 1 << 26):  # a few rows at a time, and a GPU's whole batch at once
        monkeypatch.setattr(hint_warp, "_BLOCK", block)
        torch.testing.assert_close(_spline_read(ctrl, coef, size), dense, atol=1e-5, rtol=0)


def test_the_guards_blur_equals_a_depthwise_gaussian_with_replicated_edges():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 20, 28, generator=g)
    sigma = 2.5
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    plain = F.conv2d(
        F.conv2d(padded, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3),
        k.view(1, 1, -1, 1).expand(3, 1, -1, 1),
        groups=3,
    )
    torch.testing.assert_close(_gaussian_blur(images, sigma), plain, atol=1e-6, rtol=0)


@pytest.mark.parametrize("base", ["mean", "pose-affine"])
def test_shared_frame_tokens_equal_running_every_window_whole(base):
    torch.manual_seed(0)
    model = LandmarkCompleter(LandmarkCompleterConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, base=base))
    for head in (model.lip_head, model.jaw_head):  # non-zero heads, so the networks' part shows
        torch.nn.init.normal_(head.weight, std=0.1)
    model.eval()
    cfg, rng = model.config, np.random.default_rng(0)
    n = 13
    audio = rng.normal(size=(n, cfg.audio_steps, cfg.n_features)).astype(np.float32)
    pose = rng.uniform(0.3, 0.7, (n, 74, 2)).astype(np.float32)
    refs = rng.uniform(0.3, 0.7, (cfg.n_refs, 131, 2)).astype(np.float32)
    shared = predict_sequence(model, audio, pose, refs)

    class Whole(torch.nn.Module):  # the same model seen only through forward(), as an onnxruntime stand-in is
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.config = model, model.config

        def forward(self, *args):
            return self.inner(*args)

    np.testing.assert_allclose(shared, predict_sequence(Whole(), audio, pose, refs), atol=1e-5)


# -- the dub --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from dubber import DubbingPipeline

    root = make_tiny_weights(tmp_path_factory.mktemp("weights"))
    return DubbingPipeline.from_pretrained(root / TINY_BUNDLE, device="cpu")


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_overlapped_stages_write_the_same_bytes_as_one_after_another(tmp_path, tiny_pipeline, monkeypatch, workers):
    from dubber.pipeline import dubbing

    monkeypatch.setattr(dubbing, "render_workers", lambda device, runtime: workers)
    clip = make_face_video(tmp_path / "face.mp4", frames=20, no_face=range(12, 16))
    speech = make_audio(tmp_path / "speech.wav", seconds=1.3)  # about 32 frames: the video is extended by ping-pong
    digests = {}
    for overlap in (True, False):
        out = tmp_path / f"{overlap}.mp4"
        result = tiny_pipeline(clip, speech, out, steps=2, batch_size=3, overlap=overlap)
        assert result.frames > 20 and result.face_frames > 0
        assert result.settings["render_workers"] == (workers if overlap else 1)
        digests[overlap] = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digests[True] == digests[False]


def test_chunks_render_two_at_once_only_where_torch_runs_one_cpu_thread(monkeypatch):
    from dubber.pipeline import dub_pass

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(dub_pass, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert dub_pass.render_workers(cpu, "torch") == 2
    assert dub_pass.render_workers(cuda, "torch") == 1 and dub_pass.render_workers(cpu, "onnx") == 1
    monkeypatch.setattr(dub_pass, "usable_cores", lambda: 1)
    assert dub_pass.render_workers(cpu, "torch") == 1
    monkeypatch.setattr(dub_pass, "usable_cores", lambda: 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # torch's own threads fill the cores
    assert dub_pass.render_workers(cpu, "torch") == 1


@pytest.mark.parametrize("stage", ["paste", "render"])
def test_an_error_in_a_stage_leaves_no_output_and_no_thread(tmp_path, tiny_pipeline, monkeypatch, stage):
    from dubber.pipeline import dubbing
    from dubber.pipeline.face_redraw import FaceRedrawer

    monkeypatch.setattr(dubbing, "render_workers", lambda device, runtime: 2)
    clip = make_face_video(tmp_path / "face.mp4", frames=20)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.8)
    calls = []
    working = getattr(FaceRedrawer, stage)

    def broken(self, *args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError(f"{stage} failed")
        return working(self, *args)

    monkeypatch.setattr(FaceRedrawer, stage, broken)
    before = threading.active_count()
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match=f"{stage} failed"):
        tiny_pipeline(clip, speech, out, steps=1, batch_size=4, overlap=True)
    assert not out.exists() and no_partials(Path(tmp_path))
    assert threading.active_count() == before
