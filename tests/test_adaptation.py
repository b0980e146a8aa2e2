"""Per-video adaptation of the landmark completer: it learns the clip it is given, keeps the model as it came when
nothing improves, averages with the original weights, and a dub with it off is today's dub."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from dubber.audio.features import AudioFeatures
from dubber.face.landmarks import ALL_INDICES, N_POSE, mouth_opening
from dubber.models import LandmarkCompleter, LandmarkCompleterConfig, predict_sequence
from dubber.pipeline.adaptation import AdaptationSettings, adapt_completer
from dubber.pipeline.analysis import ReferencePool, VideoTrack
from tests.media_factory import make_face_video
from tests.synthetic_cache import make_clip_arrays
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

TINY = LandmarkCompleterConfig.named("tiny")


def _clip(frames: int = 200, seed: int = 0) -> tuple[VideoTrack, AudioFeatures]:
    """A synthetic speaker whose jaw drops with the loudness of their own audio, as the dub's first pass tracks it."""
    times, mel, mesh = make_clip_arrays(np.random.default_rng(seed), frames, speaker_scale=1.1)
    points = mesh[:, list(ALL_INDICES)]
    track = VideoTrack(
        times=times, has_face=np.ones(frames, bool), transforms=np.zeros((frames, 4)), points=points,
        opening=mouth_opening(mesh).astype(np.float32), frontal=np.ones(frames, bool), yaw=np.zeros(frames, np.float32),
        pool=ReferencePool(),
    )  # fmt: skip
    return track, AudioFeatures(mel)


def _error(model: LandmarkCompleter, track: VideoTrack, features: AudioFeatures, refs: np.ndarray) -> float:
    pred = predict_sequence(model, features.windows(track.times), track.points[:, :N_POSE], refs)
    return float(np.abs(pred - track.points[:, N_POSE:]).mean())


def test_adaptation_learns_the_clip_and_averages_with_the_original():
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY).eval()
    track, features = _clip()
    refs = track.landmark_references(TINY.n_refs)
    before = _error(model, track, features, refs)
    settings = AdaptationSettings(steps=60, seconds=600.0, lr=3e-3, batch_size=16, mix=1.0)  # steps bind, not time
    adapted, report = adapt_completer(model, track, features, refs, settings)
    assert report.windows > 100 and report.steps[""] == 60 and report.best_step[""] > 0
    assert report.held_out_after[""] < report.held_out_before[""]
    assert _error(adapted, track, features, refs) < 0.7 * before  # it learnt this speaker's mouth
    again, _ = adapt_completer(model, track, features, refs, settings)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in adapted.state_dict().items())  # deterministic
    original = {k: v.clone() for k, v in model.state_dict().items()}
    half, _ = adapt_completer(model, track, features, refs, replace(settings, mix=0.5))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())  # the model given is untouched
    for k, v in half.state_dict().items():  # a weight-space average of the original and the fine-tuned weights
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.5 * (original[k] + adapted.state_dict()[k]))


def test_adaptation_keeps_the_model_when_nothing_improves_and_skips_a_clip_too_short():
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY).eval()
    track, features = _clip()
    refs = track.landmark_references(TINY.n_refs)
    same, report = adapt_completer(model, track, features, refs, AdaptationSettings(seconds=1.0, lr=0.0))
    assert report.best_step[""] == 0
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in model.state_dict().items())
    short, _ = _clip(frames=6)
    kept, none = adapt_completer(model, short, AudioFeatures(features.mel[:60]), refs)
    assert kept is model and none is None


def test_adaptation_learns_from_one_persons_frames_only(monkeypatch):
    """In a video of two people the references are one person's (the one dubbed, else the one seen longest), so
    only their frames teach it."""
    torch.manual_seed(0)
    model = LandmarkCompleter(TINY).eval()
    track, features = _clip()
    refs = track.landmark_references(TINY.n_refs)
    settings = AdaptationSettings(steps=2, seconds=600.0, batch_size=4)
    _, everyone = adapt_completer(model, track, features, refs, settings)
    theirs = np.zeros(track.frames, bool)
    theirs[50:120] = True  # the other person before and after
    monkeypatch.setattr(VideoTrack, "person_frames", lambda self, rank: theirs if rank == 1 else ~theirs)
    _, one = adapt_completer(model, track, features, refs, replace(settings, person=1))
    assert everyone.windows == track.frames - TINY.window + 1 and one.windows == 70 - TINY.window + 1


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("talk")
    return make_face_video(folder / "talk.mp4", frames=90, audio_rate=16000)


def test_a_dub_with_adaptation_off_is_todays_dub_and_on_reports_its_time(tmp_path, talking_clip, monkeypatch, capsys):
    from dubber.cli.app import run
    from tests.media_factory import make_audio

    monkeypatch.setenv("DUB_WEIGHTS", str(make_tiny_weights(tmp_path / "weights")))
    speech = make_audio(tmp_path / "speech.wav", seconds=1.0)
    base = ["video", str(talking_clip), "--audio", str(speech), "--weights", TINY_BUNDLE, "--steps", "1", "--json"]
    outs = {}
    for name, extra in (("plain", []), ("off", ["--adapt", "off"]), ("on", ["--adapt", "on", "--adapt-seconds", "2"])):
        outs[name] = tmp_path / f"{name}.mp4"
        assert run([*base, "-o", str(outs[name]), *extra]) == 0
        outs[name + "_result"] = json.loads(capsys.readouterr().out)
    assert outs["plain"].read_bytes() == outs["off"].read_bytes()
    assert "adapt" in outs["on_result"]["timings"] and "adapt" not in outs["plain_result"]["timings"]
    assert outs["on_result"]["timings"]["adapt"] < 10
    assert run([*base, "-o", str(tmp_path / "bad.mp4"), "--adapt", "always"]) == 2
    capsys.readouterr()
    # The second dub of the video finds its adapted model in the cache: the same model, no training.
    cache = tmp_path / "cache"
    again = [*base, "--adapt", "on", "--adapt-seconds", "2", "--cache-dir", str(cache)]
    assert run([*again, "-o", str(tmp_path / "a.mp4")]) == 0
    first = json.loads(capsys.readouterr().out)["timings"]["adapt"]
    assert run([*again, "-o", str(tmp_path / "b.mp4")]) == 0
    second = json.loads(capsys.readouterr().out)["timings"]["adapt"]
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes() and second < first
    assert run(["cache", "list", "--cache-dir", str(cache), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert len(entries) == 1 and entries[0]["video"] == str(talking_clip.resolve())
    assert run(["cache", "clear", "--cache-dir", str(cache)]) == 0 and not list(cache.iterdir())


def test_the_cache_key_follows_the_video_the_weights_and_the_settings(tmp_path, talking_clip):
    import shutil

    from dubber.pipeline.adaptation_cache import entry_key

    torch.manual_seed(0)
    model = LandmarkCompleter(TINY)
    key = entry_key(talking_clip, model, AdaptationSettings())
    assert key == entry_key(talking_clip, model, AdaptationSettings(seconds=5))  # the budget is not the result
    other = shutil.copy(talking_clip, tmp_path / "other.mp4")
    assert entry_key(other, model, AdaptationSettings()) == key  # same bytes, same entry
    with open(other, "ab") as f:
        f.write(b"\0")
    assert entry_key(other, model, AdaptationSettings()) != key
    with torch.no_grad():
        model.lip_head.bias.add_(1e-3)
    assert entry_key(talking_clip, model, AdaptationSettings()) != key
    assert entry_key(talking_clip, model, AdaptationSettings(seed=1)) != entry_key(
        talking_clip, model, AdaptationSettings()
    )
