"""The landmark completer: model, references, sequence inference, training (tiny), resume, evaluation, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from cli_tests.synthetic_cache import make_cache
from dubber.data.cache import PrepCache
from dubber.errors import InputError
from dubber.evaluation.alignments import silence_mask
from dubber.evaluation.landmark_eval import LandmarkEvalOptions, evaluate_landmarks
from dubber.evaluation.metrics import correlation, jitter, lagged_correlation, lmd, velocity_error
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig, predict_sequence
from dubber.models.reference_choice import spread_references
from dubber.training.landmark_data import WindowSampler, content_opening, load_clips
from dubber.training.landmark_trainer import LandmarkTrainConfig, train_landmarks

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
    assert not torch.equal(a["mel"], s.batch(8, seed=3, step=8)["mel"])
    assert a["refs"].shape == (8, TINY.n_refs, 131, 2) and a["target"].shape == (8, TINY.window, 57, 2)
    # Frequency warping changes the mel alone, and a sampler without it draws what it always drew.
    w = WindowSampler(clips, TINY.window, TINY.n_refs, freq_warp=0.15)
    c = w.batch(8, seed=3, step=7)
    assert all(torch.equal(a[k], c[k]) for k in ("pose", "target", "refs"))
    assert not torch.equal(a["mel"], c["mel"]) and torch.equal(c["mel"], w.batch(8, seed=3, step=7)["mel"])


def _train(cache, run, steps, **kw):
    settings = dict(model="tiny", batch_size=16, lr=3e-3, warmup_steps=10, max_steps=steps, eval_every=10**6,
                    checkpoint_minutes=1e9, seed=0)  # fmt: skip
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
    base = [sys.executable, "-m", "dubber"]
    train = subprocess.run(
        base
        + [
            "train",
            "landmarks",
            "--data",
            str(cache),
            "--out",
            str(run),
            "--model",
            "tiny",
            "--max-steps",
            "30",
            "--batch-size",
            "8",
            "--eval-every",
            "15",
            "--device",
            "cpu",
            "--opening-weight",
            "0.2",
            "--point-loss",
            "l2",
            "--velocity-weight",
            "2.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["step"] == 30
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["opening_weight"] == 0.2 and saved["point_loss"] == "l2" and saved["velocity_weight"] == 2.5
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r.get("eval")] == [15, 30]
    steps = [r for r in log if "loss" in r]
    assert steps and all("opening" in r and "l2" in r for r in steps)
    for r in steps:  # every weight reaches the loss that was minimised
        assert r["loss"] == pytest.approx(r["l2"] + 2.5 * r["velocity"] + 0.2 * r["opening"], rel=1e-4)
    bad_loss = subprocess.run(
        base + ["train", "landmarks", "--data", str(cache), "--out", str(tmp_path / "r2"), "--point-loss", "l3"],
        capture_output=True,
        text=True,
    )
    assert bad_loss.returncode == 2 and "l3" in bad_loss.stderr and not (tmp_path / "r2").exists()
    again = subprocess.run(
        base + ["train", "landmarks", "--data", str(cache), "--out", str(run), "--model", "tiny"],
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


def test_content_opening_matches_the_face_helper():
    from dubber.face.landmarks import CONTENT_INDICES, mouth_opening

    pts = np.random.default_rng(0).random((4, 478, 2))
    np.testing.assert_allclose(content_opening(pts[:, list(CONTENT_INDICES)]), mouth_opening(pts))


def test_audio_delays_read_only_clear_offsets(tmp_path):
    from dubber.training.landmark_data import read_audio_delays

    def row(clip, frames, fps, plain, best):
        return {"clip": clip, "offset_frames": frames, "fps": fps, "corr": plain, "corr_best": best}

    report = tmp_path / "offsets.json"
    rows = [
        row("late", 4, 25.0, 0.36, 0.55),
        row("early", -2, 30.0, 0.40, 0.50),
        row("one_frame", 1, 25.0, 0.30, 0.60),  # one frame: as likely noise
        row("weak", 3, 25.0, 0.50, 0.52),  # barely better at the shift
        row("none", 0, 25.0, 0.7, 0.7),
        row("no_corr", 3, 25.0, None, None),
    ]
    report.write_text(json.dumps({"summary": {}, "clips": rows}))
    assert read_audio_delays(report) == {"late": pytest.approx(0.16), "early": pytest.approx(-2 / 30)}
    assert set(read_audio_delays(report, min_frames=1)) == {"late", "early", "one_frame"}
    report.write_text('{"clips": [{"clip": "x"}]}')
    with pytest.raises(InputError, match="offsets.json.*not a sync offsets report"):
        read_audio_delays(report)


def test_audio_delay_reads_the_mel_that_much_later(tmp_path):
    cache = PrepCache(make_cache(tmp_path / "c", SPEAKERS))
    rec = cache.records("train")[0]
    track = cache.load(rec)
    plain = load_clips(cache, "train")[0]
    dt = float(np.median(np.diff(track.times)))
    late = load_clips(cache, "train", audio_delays={rec.clip_id: 2 * dt})[0]
    assert late.clip_id == plain.clip_id == rec.clip_id
    np.testing.assert_array_equal(late.mel_windows[:-3], plain.mel_windows[2:-1])
    np.testing.assert_array_equal(late.points, plain.points)  # the picture stays where it was
    others = load_clips(cache, "train", audio_delays={rec.clip_id: 2 * dt})[1:]
    untouched = load_clips(cache, "train")[1:]
    assert all(np.array_equal(a.mel_windows, b.mel_windows) for a, b in zip(others, untouched, strict=True))


def test_training_takes_a_window_and_sync_offsets(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    clip = PrepCache(cache).records("train")[0].clip_id
    report = tmp_path / "offsets.json"
    report.write_text(
        json.dumps({"clips": [{"clip": clip, "offset_frames": 3, "fps": 25.0, "corr": 0.2, "corr_best": 0.5}]})
    )
    _train(cache, tmp_path / "run", 2, window=7, sync_offsets=str(report))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["window"] == 7 and saved["audio_delays"] == {clip: pytest.approx(0.12)}
    model = LandmarkCompleter.from_pretrained(tmp_path / "run" / "model")
    assert model.config.window == 7


def test_time_stretch_resamples_target_and_mel_together(tmp_path):
    cache = PrepCache(make_cache(tmp_path / "c", SPEAKERS))
    clips = load_clips(cache, "train")
    plain = WindowSampler(clips, TINY.window, TINY.n_refs)
    stretched = WindowSampler(clips, TINY.window, TINY.n_refs, time_stretch=0.25)
    a, b = stretched.batch(16, seed=1, step=2), stretched.batch(16, seed=1, step=2)
    assert all(torch.equal(a[k], b[k]) for k in a)  # still a function of seed and step
    p = plain.batch(16, seed=1, step=2)
    assert not torch.equal(a["target"], p["target"]) and not torch.equal(a["mel"], p["mel"])
    # at rate 1 the resampling gives back the window as it was
    c = clips[0]
    t = TINY.window
    mel = np.empty((t, 16, 80), np.float32)
    pose = np.empty((t, 74, 2), np.float32)
    target = np.empty((t, 57, 2), np.float32)
    assert stretched._stretch(c, 10, 10, 1.0, mel, pose, target) == t
    np.testing.assert_allclose(target, c.content[10 : 10 + t], atol=1e-6)
    np.testing.assert_allclose(mel, c.mel_windows[10 : 10 + t].astype(np.float32), atol=1e-2)
    # a faster rate spans more source frames, interpolating between them
    assert stretched._stretch(c, 10, 10, 1.25, mel, pose, target) == int(np.ceil((t - 1) * 1.25)) + 1
    np.testing.assert_allclose(target[1], 0.75 * c.content[11] + 0.25 * c.content[12], atol=1e-6)


def test_window_is_refused_with_init_from(tmp_path):
    cache = make_cache(tmp_path / "c", SPEAKERS)
    LandmarkCompleter(TINY).save_pretrained(tmp_path / "start")
    with pytest.raises(InputError, match="--window cannot change"):
        _train(cache, tmp_path / "run", 1, window=7, init_from=str(tmp_path / "start"))
    assert not (tmp_path / "run").exists()


def test_opening_loss_matches_the_numpy_opening_and_only_adds_when_asked():
    from dubber.training.landmark_loss import landmark_loss, opening_of

    g = torch.Generator().manual_seed(0)
    target = 0.3 + 0.4 * torch.rand(2, 5, 57, 2, generator=g)
    pred = (target + 0.01 * torch.randn(2, 5, 57, 2, generator=g)).requires_grad_(True)
    np.testing.assert_allclose(opening_of(target).numpy(), content_opening(target.numpy()), rtol=1e-5)
    plain, parts = landmark_loss(pred, target, 1.0)
    assert "opening" not in parts
    weighted, parts = landmark_loss(pred, target, 1.0, opening_weight=0.5)
    expected = (opening_of(pred) - opening_of(target)).abs().mean().detach()
    assert parts["opening"] == pytest.approx(float(expected))
    assert weighted.item() == pytest.approx(plain.item() + 0.5 * float(expected), rel=1e-6)
    weighted.backward()
    # The opening term reaches exactly the four points that define it, beyond the point L1's uniform gradient.
    from dubber.training.landmark_data import OPENING_IN_CONTENT

    extra = pred.grad.abs().sum(dim=(0, 1, 3))
    others = [i for i in range(57) if i not in OPENING_IN_CONTENT]
    assert extra[list(OPENING_IN_CONTENT)].min() > extra[others].max()


def test_l2_point_loss_is_scaled_squared_error_with_the_same_velocity_term():
    from dubber.training.landmark_loss import landmark_loss

    g = torch.Generator().manual_seed(1)
    target = 0.3 + 0.4 * torch.rand(2, 5, 57, 2, generator=g)
    pred = target + 0.01 * torch.randn(2, 5, 57, 2, generator=g)
    l1_loss, l1_parts = landmark_loss(pred, target, 1.0)
    l2_loss, l2_parts = landmark_loss(pred, target, 1.0, point_loss="l2")
    assert l2_parts["l1"] == l1_parts["l1"] and l2_parts["velocity"] == l1_parts["velocity"]
    assert l2_parts["l2"] == pytest.approx(50.0 * float((pred - target).square().mean()))
    assert float(l2_loss) == pytest.approx(l2_parts["l2"] + l2_parts["velocity"], rel=1e-6)
    assert float(l1_loss) == pytest.approx(l1_parts["l1"] + l1_parts["velocity"], rel=1e-6)
    with pytest.raises(ValueError, match="unknown point loss"):
        landmark_loss(pred, target, 1.0, point_loss="l3")
    with pytest.raises(ValueError, match="unknown point loss 'l3'"):
        LandmarkTrainConfig(point_loss="l3")


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
    again = quick_dev_lmd(best, clips, "cpu", {"ann", "bob", "cat"})
    assert again["dev_lmd_unseen"] == pytest.approx(evals[3], rel=1e-5)
    last = LandmarkCompleter.from_pretrained(tmp_path / "a" / "model").state_dict()
    assert any(not torch.equal(v, last[k]) for k, v in best.state_dict().items())
    assert not (tmp_path / "a" / "best.partial").exists() and not (tmp_path / "a" / "best.old").exists()

    # Stopped after 4 steps (inside the warm-up, so the schedule is the same) and resumed: the same best, kept.
    _train(cache, tmp_path / "b", 4, lr=1e-2, eval_every=3, keep_best="dev_lmd_unseen")
    conf = json.loads((tmp_path / "b" / "config.json").read_text())
    conf["train"]["max_steps"] = 6
    (tmp_path / "b" / "config.json").write_text(json.dumps(conf))
    result = train_landmarks(cache, tmp_path / "b", LandmarkTrainConfig(**conf["train"]), resume=True, device="cpu")
    assert result.best == {"step": 3, "value": pytest.approx(evals[3])}
    wb = LandmarkCompleter.from_pretrained(tmp_path / "b" / "best").state_dict()
    assert all(torch.equal(v, wb[k]) for k, v in best.state_dict().items())


def test_keep_best_is_refused_without_what_it_needs(tmp_path):
    with pytest.raises(ValueError, match="dev_loss"):
        LandmarkTrainConfig(keep_best="dev_loss")
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
        [sys.executable, "-m", "dubber", "train", "landmarks", "--data", str(seen), "--out", str(tmp_path / "r4"),
         "--keep-best", "dev_loss"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "dev_loss" in bad.stderr and not (tmp_path / "r4").exists()
