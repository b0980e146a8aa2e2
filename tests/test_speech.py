"""The speech-encoder front end: Whisper's log-mel, the encoder and its conversion, chunked features, the cache's
speech features, and a landmark completer trained and evaluated on them."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dubber.audio.speech import SpeechFeatures, encode_speech, whisper_log_mel
from dubber.data import PrepCache
from dubber.data.prep_clip import ClipRecord
from dubber.data.speech_cache import add_speech_features, read_speech
from dubber.errors import InputError
from dubber.evaluation.landmark_eval import LandmarkEvalOptions, evaluate_landmarks
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.speech_encoder import DEFAULT_SPEECH_ENCODER, SpeechEncoder, SpeechEncoderConfig
from dubber.pipeline.motion import member_windows, predict_from_features
from dubber.training.landmark_trainer import LandmarkTrainConfig, train_landmarks
from dubber.weights import load_speech_encoder, verify_entry
from tests.media_factory import make_audio
from tests.synthetic_cache import make_cache
from tests.tiny_bundle import make_tiny_speech_encoder

ROOT = Path(__file__).resolve().parent.parent
SPEAKERS = {"a": "train", "b": "train", "c": "train", "d": "dev"}
TINY = ("tiny-test.layer1", 16)  # the tiny encoder's only block, as the cache names them


@pytest.fixture()
def tiny_speech_weights(tmp_path, monkeypatch) -> SpeechEncoder:
    monkeypatch.setenv("DUB_WEIGHTS", str(tmp_path / "weights"))
    return make_tiny_speech_encoder(tmp_path / "weights")


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (
        0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.normal(size=len(t))
    ).astype(np.float32)


# -- Whisper's log-mel and the encoder ---------------------------------------------------------------------------------
def test_whisper_log_mel_matches_an_independent_computation():
    x = _speech(0.7)
    ours = whisper_log_mel(x, n_frames=100)
    # torch's STFT (reflect-padded, periodic Hann, last frame dropped) and a loop-built Slaney bank over 0-8 kHz
    padded = np.zeros(100 * 160)
    padded[: len(x)] = x
    spec = (
        torch.stft(
            torch.from_numpy(padded), 400, 160, window=torch.hann_window(400, dtype=torch.float64), return_complex=True
        )[:, :-1]
        .abs()
        .numpy()
        ** 2
    )

    def to_mel(f: float) -> float:
        return f / (200 / 3) if f < 1000 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)

    def to_hz(m: float) -> float:
        return m * 200 / 3 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)

    edges = [to_hz(to_mel(8000.0) * i / 81) for i in range(82)]
    bank = np.zeros((80, 201))
    for m in range(80):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for b in range(201):
            f = b * 40.0
            if left < f < right:
                tri = (f - left) / (centre - left) if f <= centre else (right - f) / (right - centre)
                bank[m, b] = tri * 2.0 / (right - left)
    log = np.log10(np.maximum(bank @ spec, 1e-10))
    ref = (np.maximum(log, log.max() - 8.0) + 4.0) / 4.0
    assert ours.shape == (80, 100)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_speech_encoder_shapes_and_save_load(tmp_path):
    torch.manual_seed(0)
    enc = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    mel = torch.randn(2, 80, 3000)
    out = enc(mel)
    assert out.shape == (2, 1500, 16)
    with torch.no_grad():  # layer 1 of 1: the last block's hidden states, before the final norm
        hidden = enc(mel, layer=1)
        assert torch.allclose(enc.norm(hidden), out, atol=1e-5) and not torch.allclose(hidden, out)
    with pytest.raises(ValueError, match="layer 2 of a 1-block encoder"):
        enc(mel, layer=2)
    enc.save_pretrained(tmp_path / "e")
    again = SpeechEncoder.from_pretrained(tmp_path / "e")
    assert again.config == enc.config
    with torch.no_grad():
        assert torch.allclose(again(mel), out)
    with pytest.raises(ValueError, match="unknown speech encoder"):
        SpeechEncoderConfig.named("huge")


def test_long_audio_is_stitched_from_the_middles_of_overlapping_chunks():
    torch.manual_seed(0)
    enc = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    x = _speech(45.0)
    feats = encode_speech(x, enc).steps
    assert feats.shape == (1 + len(x) // 320, 16)
    with torch.no_grad():
        first = enc(torch.from_numpy(whisper_log_mel(x[:480_000]))[None])[0].numpy()
        second = enc(torch.from_numpy(whisper_log_mel(x[320_000:800_000]))[None])[0].numpy()
    np.testing.assert_allclose(feats[:1250], first[:1250], atol=1e-5)  # chunk 0 up to 25 s
    np.testing.assert_allclose(feats[1250:], second[250 : 250 + len(feats) - 1250], atol=1e-5)  # chunk 1 (from 20 s)
    short = encode_speech(x[:16000], enc).steps  # one chunk: the first 50 steps of the padded 30 s
    np.testing.assert_allclose(
        short, enc(torch.from_numpy(whisper_log_mel(x[:16000]))[None])[0, :51].detach(), atol=1e-5
    )


@pytest.mark.parametrize("fps", [24.0, 25.0, 30000 / 1001, 30.0, 50.0])
def test_speech_windows_centre_on_each_frame_time(fps):
    feats = SpeechFeatures(np.arange(200, dtype=np.float32)[:, None])
    times = np.arange(int(3.9 * fps)) / fps
    win = feats.windows(times, 10)
    assert win.shape == (len(times), 10, 1)
    centre = np.clip(np.floor(times * 50 + 0.5), 0, 199)
    np.testing.assert_array_equal(win[:, 5, 0], centre)
    assert np.abs(win[:, 5, 0] / 50 - times).max() <= 0.01 + 1e-9  # within half a step of the frame
    np.testing.assert_array_equal(win[0, :, 0], [0, 0, 0, 0, 0, 0, 1, 2, 3, 4])  # the edge step repeats


# -- conversion from CTranslate2 --------------------------------------------------------------------------------------
def _convert_tool():
    spec = importlib.util.spec_from_file_location("convert_whisper", ROOT / "scripts" / "convert_whisper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_ct2(path: Path, variables: dict[str, np.ndarray]) -> None:
    """CTranslate2's model.bin layout (version 6), written out here independently of the reader."""
    codes = {np.dtype(np.float16): 4, np.dtype(np.int16): 2, np.dtype(np.float32): 0}

    def text(s: str) -> bytes:
        b = s.encode() + b"\0"
        return struct.pack("<H", len(b)) + b

    out = struct.pack("<I", 6) + text("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, v in variables.items():
        out += text(name) + struct.pack("<B", v.ndim) + struct.pack("<" + "I" * v.ndim, *v.shape)
        out += struct.pack("<B", codes[v.dtype]) + struct.pack("<I", v.nbytes) + v.tobytes()
    path.write_bytes(out + struct.pack("<I", 0))


def test_ctranslate2_export_converts_to_the_same_encoder(tmp_path):
    torch.manual_seed(0)
    cfg = SpeechEncoderConfig(d_model=16, n_layers=2, n_heads=2, n_ctx=1500, source="t")
    enc = SpeechEncoder(cfg).eval()
    with torch.no_grad():  # fp16-exact weights, as the export stores them
        for p in enc.parameters():
            p.copy_(p.half().float())
    sd = {k: v.numpy().astype(np.float16) for k, v in enc.state_dict().items()}
    names = {"conv1": "conv1", "conv2": "conv2"}
    var = {f"encoder/{names[k.split('.')[0]]}/{k.split('.')[1]}": v for k, v in sd.items() if k.startswith("conv")}
    var["encoder/layer_norm/gamma"], var["encoder/layer_norm/beta"] = sd["norm.weight"], sd["norm.bias"]
    parts = {
        "attn_norm": "self_attention/layer_norm",
        "attn_qkv": "self_attention/linear_0",
        "attn_out": "self_attention/linear_1",
        "ffn_norm": "ffn/layer_norm",
        "ffn_in": "ffn/linear_0",
        "ffn_out": "ffn/linear_1",
    }
    for i in range(2):
        for ours, theirs in parts.items():
            w, b = ("gamma", "beta") if ours.endswith("norm") else ("weight", "bias")
            var[f"encoder/layer_{i}/{theirs}/{w}"] = sd[f"blocks.{i}.{ours}.weight"]
            var[f"encoder/layer_{i}/{theirs}/{b}"] = sd[f"blocks.{i}.{ours}.bias"]
    var["encoder/num_heads"] = np.array(2, np.int16)
    var["encoder/position_encodings/encodings"] = enc.positions.numpy().astype(np.float16)
    var["decoder/embeddings/weight"] = np.zeros((4, 16), np.float16)  # the decoder is read and left out
    _write_ct2(tmp_path / "model.bin", var)
    tool = _convert_tool()
    converted = tool.convert(tool.read_ct2(tmp_path / "model.bin"), "t")
    assert converted.config == cfg
    theirs = converted.state_dict()
    assert all(torch.equal(theirs[k], v) for k, v in enc.state_dict().items())
    (tmp_path / "bad.bin").write_bytes(struct.pack("<I", 5))
    with pytest.raises(ValueError, match="version 5"):
        tool.read_ct2(tmp_path / "bad.bin")


def test_the_shipped_speech_encoder_is_whisper_tiny_en():
    assert all(c.ok for c in verify_entry(f"speech/{DEFAULT_SPEECH_ENCODER}", ROOT / "weights"))
    enc = load_speech_encoder(DEFAULT_SPEECH_ENCODER, ROOT / "weights" / "speech" / DEFAULT_SPEECH_ENCODER)
    assert (enc.config.d_model, enc.config.n_layers, enc.config.n_heads) == (384, 4, 6)
    feats = encode_speech(_speech(1.0), enc).steps
    assert feats.shape == (51, 384) and np.isfinite(feats).all()
    # speech and silence give different features: the encoder hears the sound
    silent = encode_speech(np.zeros(16000, np.float32), enc).steps
    assert np.abs(feats[10:40] - silent[10:40]).mean() > 0.1 * np.abs(silent).mean()


# -- the cache's speech features --------------------------------------------------------------------------------------
def test_speech_features_are_added_to_a_cache_once(tmp_path):
    torch.manual_seed(0)
    enc = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    wav = make_audio(tmp_path / "a.wav", seconds=1.5)
    (tmp_path / "clips" / "x").mkdir(parents=True)
    rec = ClipRecord("x", "train", "s", str(wav), "ok", has_audio=True)
    calls = []
    assert add_speech_features(tmp_path, [rec], enc, lambda d, t: calls.append((d, t))) == 1
    assert calls == [(1, 1)]
    feats = read_speech(tmp_path, rec, "tiny-test")
    assert feats.shape == (1 + 24000 // 320, 16)
    assert read_speech(tmp_path, rec, "another-encoder") is None
    assert add_speech_features(tmp_path, [rec], enc) == 0  # resumable: done clips are kept
    (tmp_path / "clips" / "y").mkdir()
    gone = ClipRecord("y", "train", "s", str(tmp_path / "moved.wav"), "ok", has_audio=True)
    with pytest.raises(InputError, match="moved.wav.*prepared clip y"):
        add_speech_features(tmp_path, [gone], enc)
    assert not list((tmp_path / "clips" / "y").iterdir())  # nothing half-written
    assert add_speech_features(tmp_path, [rec], enc, layer=1) == 1  # another layer: other features, stored beside
    assert read_speech(tmp_path, rec, "tiny-test.layer1").shape == feats.shape


def test_loading_a_cache_without_speech_features_says_to_prepare_again(tmp_path):
    cache = PrepCache(make_cache(tmp_path / "c", {"a": "train"}, clips_per_speaker=1))
    with pytest.raises(InputError, match="no tiny-test.layer1 speech features; run `dub prep` again"):
        cache.load(cache.records()[0], "tiny-test.layer1")


# -- a completer that hears speech features ---------------------------------------------------------------------------
def test_config_with_speech_input_and_bad_inputs():
    cfg = LandmarkCompleterConfig.named("tiny").with_speech_input("tiny-test", 16, 10)
    assert (cfg.audio_input, cfg.speech_encoder, cfg.n_features, cfg.audio_steps) == ("speech", "tiny-test", 16, 10)
    model = LandmarkCompleter(cfg)
    out = model(torch.randn(2, cfg.window, 10, 16), torch.rand(2, cfg.window, 74, 2), torch.rand(2, cfg.n_refs, 131, 2))
    assert out.shape == (2, cfg.window, 57, 2)
    with pytest.raises(ValueError, match="unknown audio input"):
        LandmarkCompleterConfig(audio_input="video")
    with pytest.raises(ValueError, match="does not apply to audio 'speech'"):
        LandmarkTrainConfig(audio="speech", freq_warp=0.1)
    # weights saved before the renaming (the shipped config.json files) load with their old key names
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("n_features", "audio_steps")}
    assert LandmarkCompleterConfig.from_dict({**old, "n_mels": 16, "mel_steps": 10}) == cfg


@pytest.mark.parametrize("audio, dims", [("speech", 16), ("mel+speech", 96)])
def test_a_speech_completer_learns_and_evaluates(tmp_path, tiny_speech_weights, audio, dims):
    cache = make_cache(tmp_path / "c", SPEAKERS, speech=TINY)
    cfg = LandmarkTrainConfig(
        model="tiny",
        batch_size=16,
        lr=3e-3,
        warmup_steps=10,
        max_steps=150,
        seed=0,
        eval_every=10**6,
        checkpoint_minutes=1e9,
        audio=audio,
        speech_encoder="tiny-test",
        speech_layer=1,
    )
    train_landmarks(cache, tmp_path / "run", cfg, device="cpu")
    model = LandmarkCompleter.from_pretrained(tmp_path / "run" / "model")
    assert (model.config.audio_input, model.config.speech_encoder, model.config.n_features) == (
        audio,
        "tiny-test",
        dims,
    )
    report = evaluate_landmarks(model, PrepCache(cache), LandmarkEvalOptions(min_corr_seconds=2.0))
    unseen = report.groups["unseen"]
    assert unseen["model"]["opening_corr"] > 0.6
    assert unseen["model"]["lmd"] < 0.7 * unseen["static_mean"]["lmd"]
    assert unseen["silent_audio"]["lmd"] > unseen["model"]["lmd"]  # silence is encoded by the encoder itself


def test_train_cli_takes_audio_speech_and_refuses_mel_augmentation(tmp_path, tiny_speech_weights):
    cache = make_cache(tmp_path / "c", SPEAKERS, speech=TINY)
    base = [sys.executable, "-m", "dubber", "train", "landmarks", "--data", str(cache)]
    speech = ["--set", "audio=speech", "--set", "speech_encoder=tiny-test", "--set", "speech_layer=1"]
    ok = subprocess.run(
        base
        + [
            "--out",
            str(tmp_path / "r"),
            "--set",
            "model=tiny",
            "--max-steps",
            "5",
            "--set",
            "batch_size=4",
            *speech,
            "--device",
            "cpu",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["train"]["audio"] == "speech" and saved["model"]["audio_input"] == "speech"
    assert saved["model"]["speech_layer"] == 1 and saved["model"]["audio_steps"] == 10
    model = LandmarkCompleter.from_pretrained(tmp_path / "r" / "model")
    features = SpeechFeatures(np.random.default_rng(0).normal(size=(150, 16)).astype(np.float32))
    times = np.arange(60) / 25.0
    windows = member_windows(model.config, features, times)  # what dubbing feeds it
    assert windows.shape == (60, 10, 16)
    np.testing.assert_array_equal(windows, features.windows(times, 10))
    pose, refs = np.zeros((60, 74, 2), np.float32), np.zeros((model.config.n_refs, 131, 2), np.float32)
    assert predict_from_features(model, features, times, pose, refs).shape == (60, 57, 2)
    for extra, word in (
        ([*speech, "--set", "freq_warp=0.1"], "freq_warp acts on the mel"),
        (["--set", "audio=wav2vec"], "wav2vec"),
        (["--set", "audio=speech", "--set", "speech_encoder=whisper-huge"], "no model named 'speech/whisper-huge'"),
    ):
        bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), *extra], capture_output=True, text=True)
        assert bad.returncode in (1, 2) and word in bad.stderr and not (tmp_path / "bad").exists(), bad.stderr


def test_mel_and_speech_windows_put_the_nearest_speech_step_after_each_mel_step():
    from dubber.audio.features import AudioFeatures
    from dubber.audio.speech import MelAndSpeechFeatures

    mel = AudioFeatures(np.tile(np.arange(400, dtype=np.float32)[:, None], (1, 80)))  # each step holds its index
    speech = SpeechFeatures(np.arange(250, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32))
    times = np.array([0.0, 1.0, 1.37, 2.5])
    win = MelAndSpeechFeatures(mel, speech).windows(times)
    assert win.shape == (4, 16, 83)
    mel_step = win[..., 0]
    mel_step_time = np.where(mel_step >= 0, mel_step, 0) / 80.0
    expected = np.clip(
        np.floor(np.clip(np.floor(times * 80 + 0.5)[:, None] - 8 + np.arange(16), 0, None) / 80 * 50 + 0.5), 0, 249
    )
    np.testing.assert_array_equal(win[1:, :, 80], expected[1:])
    assert np.all(np.abs(win[1:, :, 80] / 50.0 - mel_step_time[1:]) <= 0.01 + 1e-9)  # within half a speech step


def test_mel_augmentation_leaves_the_speech_features_of_mel_speech_windows(tmp_path):
    from dubber.data.clip_arrays import SpeechInput, load_clips
    from dubber.training.landmark_sampler import WindowSampler

    cache = PrepCache(make_cache(tmp_path / "c", {"a": "train"}, speech=TINY))
    clips = load_clips(cache, "train", min_frames=5, speech=SpeechInput("tiny-test", 10, True, 1))
    assert clips[0].audio_windows.shape[1:] == (16, 96) and clips[0].mel_bands == 80
    sampler = WindowSampler(clips, 5, 4, freq_warp=0.2)
    raw = sampler.batch(8, seed=0, step=1, augment=False)["audio"].numpy()
    aug = sampler.batch(8, seed=0, step=1)["audio"].numpy()
    assert np.array_equal(raw[..., 80:], aug[..., 80:]) and not np.array_equal(raw[..., :80], aug[..., :80])


# -- an ensemble of a mel and a speech completer (what ships) ----------------------------------------------------------
def _tiny_pair(seed: int = 0) -> dict[str, LandmarkCompleter]:
    torch.manual_seed(seed)
    mel = LandmarkCompleter(LandmarkCompleterConfig.named("tiny"))
    speech = LandmarkCompleter(LandmarkCompleterConfig.named("tiny").with_speech_input("tiny-test", 16, 10, layer=1))
    for m in (mel, speech):  # zero-initialised heads would make every member predict the same mean shape
        with torch.no_grad():
            m.lip_head.weight.normal_(0, 0.05)
            m.jaw_head.weight.normal_(0, 0.05)
    return {"mel": mel.eval(), "speech": speech.eval()}


def test_ensemble_averages_its_members_each_on_its_own_input(tmp_path, one_torch_thread):
    from dubber.audio.features import AudioFeatures
    from dubber.audio.speech import MelAndSpeechFeatures
    from dubber.models.landmark_ensemble import LandmarkEnsemble
    from dubber.weights import load_landmark_model

    members = _tiny_pair()
    ens = LandmarkEnsemble(members, {"mel": 3.0, "speech": 1.0})  # normalised to 0.75 / 0.25
    assert ens.weights == {"mel": 0.75, "speech": 0.25}
    assert (ens.config.audio_input, ens.config.speech_encoder, ens.config.speech_layer) == ("ensemble", "tiny-test", 1)
    rng = np.random.default_rng(0)
    features = MelAndSpeechFeatures(
        AudioFeatures(rng.normal(size=(161, 80)).astype(np.float32)), SpeechFeatures(rng.normal(size=(101, 16)))
    )
    times, pose = np.arange(50) / 25.0, rng.random((50, 74, 2)).astype(np.float32)
    refs = rng.random((4, 131, 2)).astype(np.float32)
    got = predict_from_features(ens, features, times, pose, refs)
    mel_only = predict_from_features(members["mel"], features.mel, times, pose, refs)
    speech_only = predict_from_features(members["speech"], features.speech, times, pose, refs)
    np.testing.assert_allclose(got, 0.75 * mel_only + 0.25 * speech_only, atol=1e-6)
    with ThreadPoolExecutor(2) as pool:  # the members at once, summed in the same order: the same values
        np.testing.assert_array_equal(predict_from_features(ens, features, times, pose, refs, pool), got)
    ens.save_pretrained(tmp_path / "ens")
    again = load_landmark_model(tmp_path / "ens")
    assert isinstance(again, LandmarkEnsemble)
    np.testing.assert_allclose(predict_from_features(again, features, times, pose, refs), got, atol=1e-6)
    other = LandmarkCompleter(LandmarkCompleterConfig.named("tiny").with_speech_input("another", 16, 10))
    with pytest.raises(ValueError, match="different speech encoders or layers"):
        LandmarkEnsemble({"a": members["speech"], "b": other}, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="one weight per member"):
        LandmarkEnsemble(members, {"mel": 1.0})
    wide = LandmarkCompleter(replace(LandmarkCompleterConfig.named("tiny"), window=7))
    with pytest.raises(ValueError, match="window"):
        LandmarkEnsemble({"mel": members["mel"], "wide": wide}, {"mel": 1, "wide": 1})


def test_ensemble_evaluates_as_the_weighted_mean_and_joint_training_refuses_it(tmp_path, tiny_speech_weights):
    from dubber.models.landmark_ensemble import LandmarkEnsemble

    cache = PrepCache(make_cache(tmp_path / "c", SPEAKERS, speech=TINY))
    members = _tiny_pair()
    ens = LandmarkEnsemble(members, {"mel": 0.7, "speech": 0.3})
    options = LandmarkEvalOptions(min_corr_seconds=2.0)
    reports = {k: evaluate_landmarks(m, cache, options) for k, m in {**members, "ens": ens}.items()}
    rows = {k: {c["clip_id"]: c for c in r.clips} for k, r in reports.items()}
    for clip_id, row in rows["ens"].items():
        assert row["model"]["lmd"] <= max(rows["mel"][clip_id]["model"]["lmd"], rows["speech"][clip_id]["model"]["lmd"])
    ens.save_pretrained(tmp_path / "ens")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "dubber",
            "train",
            "joint",
            "--data",
            str(cache.root),
            "--out",
            str(tmp_path / "j"),
            "--landmarks",
            str(tmp_path / "ens"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "ensemble" in bad.stderr and not (tmp_path / "j").exists()
