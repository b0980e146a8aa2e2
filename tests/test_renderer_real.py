"""The shipped renderer on real held-out speakers from ../shared/data (skips without it)."""

from __future__ import annotations

import pytest

from dubber.data.render_clips import load_render_clips
from dubber.evaluation.renderer_eval import build_dev_samples, evaluate_renderer
from dubber.evaluation.renderer_monitor import face_backend
from dubber.weights import load_renderer
from tests.conftest import prepare_shared_rows

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def unseen_dev_cache(tmp_path_factory, shared_manifest):
    """Three dev clips of speakers no model trained on (the shortest of each), prepared with the real tracker."""
    by_speaker: dict[str, dict] = {}
    for r in shared_manifest:
        if r["split"] == "dev" and r["speaker"] != "grid_s1":
            if r["speaker"] not in by_speaker or float(r["seconds"]) < float(by_speaker[r["speaker"]]["seconds"]):
                by_speaker[r["speaker"]] = r
    rows = sorted(by_speaker.values(), key=lambda r: float(r["seconds"]))[:3]
    return prepare_shared_rows(rows, tmp_path_factory.mktemp("unseen_dev"))


def test_shipped_renderer_on_unseen_speakers(unseen_dev_cache):
    renderer = load_renderer()
    clips = load_render_clips(unseen_dev_cache, ("dev",), size=renderer.size, max_frames=60)
    dev = build_dev_samples(clips, renderer.n_refs, per_clip=4)
    report, generated = evaluate_renderer(renderer, dev, steps=8, seed=0, backend=face_backend())
    model, paste = report.groups["all"]["model"], report.groups["all"]["reference_paste"]
    assert generated.shape == dev.targets.shape
    # The face backend still finds a face on what the renderer drew, with the lips and jaw near where they were
    # asked to be. Over all dev speakers the shipped CPU-trained weights measure about 0.06 inter-ocular LMD and
    # 21 dB (docs/RENDERER.md: both issue bars, LMD < 0.05 and PSNR above the reference paste, are NOT met yet);
    # the bounds here guard against regressions, with room for 3 clips and codec differences between machines.
    assert model["found"] >= 0.9
    assert model["lmd"] < 0.1, report.groups
    assert model["psnr"] > 17.0 and model["psnr"] > paste["psnr"] - 8.0, report.groups
    assert 0.3 < model["ssim"] <= 1.0
