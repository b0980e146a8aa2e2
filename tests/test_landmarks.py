"""The landmark completer: model, references, sequence inference, training (tiny), resume, evaluation, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dubber.data.cache import PrepCache
from dubber.data.clip_arrays import content_opening, load_clips
from dubber.errors import InputError
from dubber.evaluation.alignments import silence_mask
from dubber.evaluation.landmark_eval import LandmarkEvalOptions, evaluate_landmarks
from dubber.evaluation.metrics import correlation, jitter, lagged_correlation, lmd, velocity_error
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig, predict_sequence
from dubber.models.reference_choice import spread_references
from dubber.training.landmark_sampler import WindowSampler
from dubber.training.landmark_trainer import LandmarkTrainConfig, train_landmarks
from tests.synthetic_cache import make_cache

TINY = LandmarkCompleterConfig.named("tiny")
SPEAKERS = {"ann": "train", "bob": "train", "cat": "train", "dan": "dev", "eve": "dev"}


def _inputs(cfg: LandmarkCompleterConfig, b: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.rand(b, cfg.window, 16, 80, generator=g) * 8 - 4
    pose = 0.3 + 0.4 * torch.rand(b, cfg.window, 74, 2, generator=g)
    refs = 0.3 + 0.4 * torch.rand(b, cfg.n_refs, 131, 2, generator=g)
    return mel, pose, refs


def test_untrained_model_predicts_the_mean_reference_shape():
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY).eval()
    mel, pose, refs = _inputs(TINY)
    out = model(mel, pose, refs)
    assert out.shape == (3, TINY.window, 57, 2)
    expected = refs[:, :, 74:].mean(1, keepdim=True).expand_as(out)
    torch.testing.assert_close(out, expected)


def test_gradients_reach_every_input():
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY)
    for p in (model.lip_head, model.jaw_head):
        torch.nn.init.normal_(p.weight, std=0.1)
    mel, pose, refs = (t.requires_grad_() for t in _inputs(TINY))
    model(mel, pose, refs).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (mel, pose, refs))


def test_save_load_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = LandmarkCompleter(TINY).eval()
    torch.nn.init.normal_(model.lip_head.weight, std=0.1)
    model.save_pretrained(tmp_path / "m")
    loaded = LandmarkCompleter.from_pretrained(tmp_path / "m")
    assert loaded.config == TINY
    args = _inputs(TINY)
    torch.testing.assert_close(loaded(*args), model(*args), rtol=0, atol=0)
    model.save_pretrained(tmp_path / "h", dtype=torch.float16)
    half = LandmarkCompleter.from_pretrained(tmp_path / "h")
    assert (tmp_path / "h" / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "m" / "model.safetensors"
    ).stat().st_size
    torch.testing.assert_close(half(*args), model(*args), rtol=0, atol=2e-3)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["d_model"] == TINY.d_model


def test_named_configs():
    assert LandmarkCompleterConfig.named("base").d_model == 512
    assert LandmarkCompleterConfig.named("base").n_refs == 15 and LandmarkCompleterConfig.named("base").window == 5
    with pytest.raises(ValueError, match="unknown"):
        LandmarkCompleterConfig.named("huge")


def test_references_spread_over_the_opening_range():
    opening = np.r_[np.zeros(50), np.linspace(0, 0.5, 50)]
    idx = spread_references(opening, np.arange(100), 5, None)
    picked = np.sort(opening[idx])
    assert picked[0] == 0.0 and picked[-1] > 0.4 and len(set(np.round(picked, 3))) >= 4
    rng = np.random.default_rng(0)
    assert len(spread_references(opening, np.arange(100), 15, rng)) == 15
    assert len(spread_references(opening, np.arange(3), 15, None)) == 15  # fewer frames than references: repeats


def test_predict_sequence_any_length():
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY)
    refs = np.full((TINY.n_refs, 131, 2), 0.5, np.float32)
    for n in (1, 3, 5, 17):
        out = predict_sequence(model, np.zeros((n, 16, 80), np.float32), np.full((n, 74, 2), 0.5, np.float32), refs)
        assert out.shape == (n, 57, 2)
        np.testing.assert_allclose(out, 0.5, atol=1e-6)  # untrained: the references' mean
    assert model.training  # the caller's mode is restored


class _PerFrame(torch.nn.Module):
    """A stand-in completer (the whole-window path, as onnxruntime's) whose every frame reads its own audio alone, so
    any set of windows that covers each frame gives the same sequence; it counts the windows it is asked for."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.config = dataclasses.replace(TINY, window=window)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.windows = 0

    def forward(self, audio, pose, refs):
        self.windows += len(audio)
        return (self.scale * audio.mean(dim=(2, 3)))[..., None, None].expand(-1, -1, 57, 2)


@pytest.mark.parametrize("n", [1, 4, 5, 6, 17, 64])
def test_a_sequence_at_a_stride_covers_every_frame_with_fewer_windows(n):
    audio = np.random.default_rng(n).random((n, 16, 80), dtype=np.float32)
    pose, refs = np.full((n, 74, 2), 0.5, np.float32), np.full((TINY.n_refs, 131, 2), 0.5, np.float32)
    runs = {}
    for stride in (1, 2, 5):
        model = _PerFrame(window=5)
        runs[stride] = (predict_sequence(model, audio, pose, refs, stride=stride), model.windows)
    for stride in (1, 2, 5):
        np.testing.assert_allclose(runs[stride][0], runs[1][0], rtol=1e-6)
        assert runs[stride][1] == math.ceil((max(n, 5) - 5) / stride) + 1  # the last window ends at the last frame


def test_metrics_on_known_cases():
    truth = np.random.default_rng(0).random((10, 57, 2))
    assert lmd(truth, truth) == 0.0 and velocity_error(truth, truth) == 0.0
    shifted = truth + np.array([0.03, 0.04])
    assert lmd(shifted, truth) == pytest.approx(0.05)
    assert lmd(shifted, truth, np.full(10, 0.5)) == pytest.approx(0.1)
    assert velocity_error(shifted, truth) == pytest.approx(0.0, abs=1e-12)
    assert correlation(np.ones(20), np.arange(20)) is None  # a constant signal: no NaN, no number
    assert correlation(np.arange(20), 2 * np.arange(20) + 1) == pytest.approx(1.0)
    assert jitter(np.repeat(truth[:1], 5, 0)) == 0.0


def test_lagged_correlation_finds_a_late_prediction():
    truth = np.random.default_rng(1).random(200)
    late = np.concatenate([np.full(3, 0.5), truth[:-3]])  # pred[i + 3] == truth[i]: the sound came 3 frames late
    lag, r = lagged_correlation(late, truth, 5)
    assert lag == 3 and r == pytest.approx(1.0)
    assert lagged_correlation(truth, late, 5)[0] == -3
    assert lagged_correlation(late, truth, 0) == (0, correlation(late, truth))  # no search: the plain correlation
    gappy = truth.copy()
    gappy[50:60] = np.nan  # unusable frames are skipped, not shifted into place
    assert lagged_correlation(gappy, truth, 2) == (0, pytest.approx(1.0))


def test_silence_mask_keeps_away_from_words():
    spans = [(0.0, 0.95, "sil"), (0.95, 1.3, "bin"), (1.3, 2.0, "sil")]
    t = np.arange(50) / 25
    m = silence_mask(t, spans, margin=0.12)
    assert m[:20].all() and not m[21:36].any() and m[36:].all()


def test_window_sampler_is_a_function_of_seed_and_step(tmp_path):
    cache = PrepCache(make_cache(tmp_path / "c", SPEAKERS))
    clips = load_clips(cache, "train")
    s = WindowSampler(clips, TINY.window, TINY.n_refs)
    a, b = s.batch(8, seed=3, step=7), s.batch(8, seed=3, step=7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["audio"], s.batch(8, seed=3, step=8)["audio"])
    assert a["refs"].shape == (8, TINY.n_refs, 131, 2) and a["target"].shape == (8, TINY.window, 57, 2)
    # Frequency warping changes the mel alone, and a sampler without it draws what it always drew.
    w = WindowSampler(clips, TINY.window, TINY.n_refs, freq_warp=0.15)
    c = w.batch(8, seed=3, step=7)
    assert all(torch.equal(a[k], c[k]) for k in ("pose", "target", "refs"))
    assert not torch.equal(a["audio"], c["audio"]) and torch.equal(c["audio"], w.batch(8, seed=3, step=7)["audio"])
    # Balanced speakers draw other windows, still as a function of seed and step.
    balanced = WindowSampler(clips, TINY.window, TINY.n_refs, balance=0.0)
    d = balanced.batch(8, seed=3, step=7)
    assert all(torch.equal(d[k], balanced.batch(8, seed=3, step=7)[k]) for k in d) and not torch.equal(
        a["target"], d["target"]
    )
    assert balanced.speakers == s.speakers and set(s.speakers) == {"ann", "bob", "cat"}


def _train(cache, run, steps, **kw):
    settings = dict(
        model="tiny",
        batch_size=16,
        lr=3e-3,
        warmup_steps=10,
        max_steps=steps,
        eval_every=10**6,
        checkpoint_minutes=1e9,
        seed=0,
    )
    cfg = LandmarkTrainConfig(**{**settings, **kw})
    return train_landmarks(cache, run, cfg, device="cpu")


def test_training_can_start_from_given_weights(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    torch.manual_seed(5)
    start = LandmarkCompleter(LandmarkCompleterConfig.named("tiny"))
    with torch.no_grad():
        for p in start.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    start.save_pretrained(tmp_path / "start")
    _train(cache, tmp_path / "run", 1, lr=0.0, init_from=str(tmp_path / "start"), freq_warp=0.1)
    after = LandmarkCompleter.from_pretrained(tmp_path / "run" / "model").state_dict()
    assert all(torch.equal(v, after[k]) for k, v in start.state_dict().items())  # lr 0: the weights it was given
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["freq_warp"] == 0.1 and saved["train"]["init_from"].endswith("start")


def test_held_out_speakers_are_never_trained_on(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    (tmp_path / "bench.csv").write_text("path,split,speaker\na.mp4,held_out,bob\nb.mp4,held_out,dan\n")
    _train(cache, tmp_path / "run", 1, hold_out=str(tmp_path / "bench.csv"))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(saved["train_speakers"]) == {"ann", "cat"} and saved["held_out_speakers"] == ["bob", "dan"]
    assert saved["dev_clips"] == len(load_clips(PrepCache(cache), "dev"))  # dev speakers are still evaluated on
    (tmp_path / "nospeaker.csv").write_text("path\na.mp4\n")
    for bad, says in [(tmp_path / "missing.csv", "no such file"), (tmp_path / "nospeaker.csv", "no speaker column")]:
        with pytest.raises(InputError, match=says):
            _train(cache, tmp_path / f"run-{bad.stem}", 1, hold_out=str(bad))


def test_tiny_training_learns_and_resumes_exactly(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    result = _train(cache, tmp_path / "run", 150)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert np.mean(losses[-2:]) < 0.6 * losses[0]
    model = LandmarkCompleter.from_pretrained(tmp_path / "run" / "model")
    report = evaluate_landmarks(model, PrepCache(cache), LandmarkEvalOptions(min_corr_seconds=2.0))
    unseen = report.groups["unseen"]
    assert unseen["model"]["lmd"] < 0.7 * unseen["static_mean"]["lmd"]
    assert unseen["model"]["opening_corr"] > 0.6
    # the synthetic clips' sound is in sync, so the best offset is none and changes nothing
    assert unseen["model"]["opening_corr_best_offset"] == pytest.approx(unseen["model"]["opening_corr"], abs=0.05)
    assert "best audio offset" in report.markdown()
    assert unseen["silent_audio"]["lmd"] > unseen["model"]["lmd"]
    assert result.step == 150

    # 10 steps, stop, resume for 10 more == 20 steps in one go, bit for bit.
    _train(cache, tmp_path / "a", 20)
    cfg = LandmarkTrainConfig(
        model="tiny",
        batch_size=16,
        lr=3e-3,
        warmup_steps=10,
        max_steps=20,
        seed=0,
        eval_every=10**6,
        checkpoint_minutes=1e9,
    )
    train_landmarks(cache, tmp_path / "b", LandmarkTrainConfig(**{**cfg.to_dict(), "max_steps": 10}), device="cpu")
    conf = json.loads((tmp_path / "b" / "config.json").read_text())
    conf["train"]["max_steps"] = 20  # the same schedule as run a from here on
    (tmp_path / "b" / "config.json").write_text(json.dumps(conf))
    train_landmarks(cache, tmp_path / "b", cfg, resume=True, device="cpu")
    wa = LandmarkCompleter.from_pretrained(tmp_path / "a" / "model").state_dict()
    wb = LandmarkCompleter.from_pretrained(tmp_path / "b" / "model").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_train_and_eval_cli(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    run = tmp_path / "run"
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('model = "tiny"\nbatch_size = 8\nmax_steps = 1000\neval_every = 15\nlr = 1e-3\n')
    base = [sys.executable, "-m", "dubber"]
    args = [
        "train",
        "landmarks",
        "--data",
        str(cache),
        "--out",
        str(run),
        "--recipe",
        str(recipe),
        "--max-steps",
        "30",
        "--set",
        "lr=3e-3",
        "--set",
        "pose_swap=0.5",
        "--device",
        "cpu",
        "--json",
    ]
    train = subprocess.run(base + args, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["step"] == 30
    saved = json.loads((run / "config.json").read_text())["train"]
    # the recipe, then --set, then the flags: later ones win
    assert saved["model"] == "tiny" and saved["max_steps"] == 30 and saved["lr"] == 3e-3 and saved["pose_swap"] == 0.5
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r.get("eval")] == [15, 30]
    for r in (r for r in log if "loss" in r):  # the loss that was minimised: the point L1 and the motion L1
        assert r["loss"] == pytest.approx(r["l1"] + r["velocity"], rel=1e-4)
    for bad, text in (
        (["--set", "point_loss=l2"], "unknown setting(s) point_loss"),
        (["--set", "audio=speeech"], "unknown audio input 'speeech'"),
        (["--keep-best", "dev_loss"], "unknown dev metric 'dev_loss'"),
        (["--recipe", str(tmp_path / "none.toml")], "no such recipe file"),
    ):
        refused = subprocess.run(
            base + ["train", "landmarks", "--data", str(cache), "--out", str(tmp_path / "r2"), *bad],
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 2 and text in refused.stderr and not (tmp_path / "r2").exists(), refused.stderr
    again = subprocess.run(
        base + ["train", "landmarks", "--data", str(cache), "--out", str(run), "--set", "model=tiny"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "--resume" in again.stderr
    report = tmp_path / "r.json"
    ev = subprocess.run(
        base
        + [
            "eval",
            "landmarks",
            "--data",
            str(cache),
            "--weights",
            str(run / "model"),
            "--report",
            str(report),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    summary = json.loads(ev.stdout)
    assert set(summary["groups"]["unseen"]) == {"model", "static_mean", "silent_audio"}
    assert len(json.loads(report.read_text())["clips"]) == 4
    bad = subprocess.run(
        base + ["eval", "landmarks", "--data", str(tmp_path), "--weights", str(run / "model")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "not a prepared cache" in bad.stderr


def test_the_shipped_recipes_make_the_shipped_members_configs():
    """recipes/ holds what trained weights/default/landmarks: each recipe gives its member's model config."""
    from dubber.training.landmark_trainer import completer_config
    from dubber.training.recipes import make_config, read_recipe
    from dubber.weights import weights_root

    root = Path(__file__).resolve().parents[1]
    shipped = weights_root() / "default" / "landmarks"
    for recipe, member in (("landmarks-mel", "mel"), ("landmarks-speech", "speech")):
        cfg = make_config(LandmarkTrainConfig, read_recipe(root / "recipes" / f"{recipe}.toml"))
        assert completer_config(cfg) == LandmarkCompleter.from_pretrained(shipped / member).config, recipe
    mel = make_config(LandmarkTrainConfig, read_recipe(root / "recipes" / "landmarks-mel.toml"))
    assert (mel.max_steps, mel.freq_warp, mel.batch_size) == (3200, 0.15, 64)


def test_content_opening_matches_the_face_helper():
    from dubber.face.landmarks import CONTENT_INDICES, mouth_opening

    pts = np.random.default_rng(0).random((4, 478, 2))
    np.testing.assert_allclose(content_opening(pts[:, list(CONTENT_INDICES)]), mouth_opening(pts))


def test_keep_best_keeps_the_lowest_dev_metric_across_a_resume(tmp_path):
    from dubber.training.landmark_trainer import quick_dev_lmd

    cache = make_cache(tmp_path / "c", SPEAKERS)
    # Six steps at this rate: the unseen dev error rises from step 3 to step 6, so the best is not the last.
    _train(cache, tmp_path / "a", 6, lr=1e-2, eval_every=3, keep_best="dev_lmd_unseen")
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["dev_lmd_unseen"] for r in log if r.get("eval")}
    assert sorted(evals) == [3, 6] and evals[3] < evals[6]
    saved = json.loads((tmp_path / "a" / "best" / "config.json").read_text())
    assert saved["trained_steps"] == 3 and saved["best_of"] == "dev_lmd_unseen"
    assert saved["best_value"] == pytest.approx(evals[3])
    # The folder holds step 3's model: evaluated again it scores what the run logged, and it is not the last.
    best = LandmarkCompleter.from_pretrained(tmp_path / "a" / "best")
    clips = load_clips(PrepCache(cache), "dev", min_frames=best.config.window)
    again = quick_dev_lmd(best, clips, {"ann", "bob", "cat"})
    assert again["dev_lmd_unseen"] == pytest.approx(evals[3], rel=1e-5)
    last = LandmarkCompleter.from_pretrained(tmp_path / "a" / "model").state_dict()
    assert any(not torch.equal(v, last[k]) for k, v in best.state_dict().items())
    assert not (tmp_path / "a" / "best.partial").exists() and not (tmp_path / "a" / "best.old").exists()

    # Stopped after 4 steps (inside the warm-up, so the schedule is the same) and resumed: the same best, kept.
    _train(cache, tmp_path / "b", 4, lr=1e-2, eval_every=3, keep_best="dev_lmd_unseen")
    conf = json.loads((tmp_path / "b" / "config.json").read_text())
    conf["train"]["max_steps"] = 6
    (tmp_path / "b" / "config.json").write_text(json.dumps(conf))
    result = train_landmarks(
        cache, tmp_path / "b", LandmarkTrainConfig.from_dict(conf["train"]), resume=True, device="cpu"
    )
    assert result.best == {"step": 3, "value": pytest.approx(evals[3])}
    wb = LandmarkCompleter.from_pretrained(tmp_path / "b" / "best").state_dict()
    assert all(torch.equal(v, wb[k]) for k, v in best.state_dict().items())


def test_keep_best_is_refused_without_what_it_needs(tmp_path):
    with pytest.raises(ValueError, match="dev_loss"):
        LandmarkTrainConfig(keep_best="dev_loss")
    with pytest.raises(ValueError, match="base cannot change"):
        LandmarkTrainConfig(init_from="somewhere", base="mean")
    with pytest.raises(ValueError, match="voice_warp"):
        LandmarkTrainConfig(voice_warp=0.15)  # needs audio "speech"
    no_dev = make_cache(tmp_path / "c", {"ann": "train", "bob": "train"})
    with pytest.raises(InputError, match="no dev clips"):
        _train(no_dev, tmp_path / "r1", 2, keep_best="dev_lmd")
    # Every dev clip's speaker also has train clips (as GRID s1 has): no unseen speaker to measure.
    seen = make_cache(tmp_path / "d", {"ann": "train", "bob": "dev"})
    for f in [seen / "manifest.csv", *seen.glob("clips/bob_*/meta.json")]:
        f.write_text(f.read_text().replace(",bob,", ",ann,").replace('"speaker": "bob"', '"speaker": "ann"'))
    with pytest.raises(InputError, match="no dev_lmd_unseen"):
        _train(seen, tmp_path / "r2", 2, keep_best="dev_lmd_unseen")
    _train(seen, tmp_path / "r3", 2, eval_every=1, keep_best="dev_lmd")  # the metric over all dev clips works
    assert json.loads((tmp_path / "r3" / "best" / "config.json").read_text())["best_of"] == "dev_lmd"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "dubber",
            "train",
            "landmarks",
            "--data",
            str(seen),
            "--out",
            str(tmp_path / "r4"),
            "--keep-best",
            "dev_loss",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "dev_loss" in bad.stderr and not (tmp_path / "r4").exists()
