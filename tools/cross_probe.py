"""Cross-dubbing at the landmark level: does a landmark model follow a new voice, or replay the video's own mouth?

    python tools/cross_probe.py ../cache/prep [--weights FOLDER ...] [--shared ../shared/data]

`dub eval` scores cross-dubbing on rendered video: each dev clip is dubbed with the next other speaker's audio
(trimmed to the clip) and the mouth opening found on the output is correlated with that audio's speech activity (log
RMS, 80 ms). This runs the same pairing on the landmark model alone, without rendering or re-tracking (seconds, not
minutes, per model), and reports per group of speakers (seen = has train clips):

- follows new audio: correlation of the predicted opening with the new audio's speech activity (what `dub eval`
  scores after rendering);
- replays the video: correlation of the predicted opening with the video's own true opening (near 0 unless the
  model copies the original mouth motion through the pose tokens);
- proxy ceiling: for the new audio's own clip, the correlation of its speaker's true opening with that audio's speech
  activity over the same seconds, i.e. how far loudness tells the mouth for these voices at all. The first number
  is only a lip-sync measure where this one is high.

Each model is a landmark folder (one completer or an ensemble); default: the shipped one. The clips' sources are read
from ``--shared`` when their manifest paths are relative. docs/QUALITY.md quotes its output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dubber.audio.features import audio_features
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures, encode_speech
from dubber.data.cache import PrepCache
from dubber.evaluation.dub_eval import pick_cross_audio
from dubber.evaluation.dub_metrics import speech_activity
from dubber.evaluation.metrics import correlation
from dubber.media.audio import AudioClip, decode_audio
from dubber.models.landmark_ensemble import LandmarkEnsemble, predict_from_features
from dubber.pipeline.motion import N_POSE
from dubber.training.landmark_data import content_opening, load_clips, reference_indices
from dubber.weights import load_landmark_model, load_speech_encoder


def speech_layers(model) -> set[tuple[str, int]]:
    members = model.members.values() if isinstance(model, LandmarkEnsemble) else [model]
    return {(m.config.speech_encoder, m.config.speech_layer) for m in members if m.config.audio_input != "mel"}


class AudioSource:
    """A clip's first ``seconds`` of audio and its features (mel, and the speech features every model here reads)."""

    def __init__(self, shared: Path, layers: set[tuple[str, int]]) -> None:
        self.shared = shared
        self.encoders = {name: load_speech_encoder(name) for name, _ in layers}
        self.layers = layers
        self.cache: dict = {}

    def __call__(self, clip, seconds: float):
        key = (clip.clip_id, round(seconds, 3))
        if key not in self.cache:
            path = Path(clip.source) if Path(clip.source).exists() else self.shared / clip.source
            decoded = decode_audio(path)
            mono = decoded.mono[: int(round(seconds * decoded.sample_rate))].astype(np.float32)
            mel = audio_features(AudioClip(mono[None], decoded.sample_rate))
            speech = {
                layer: encode_speech(mono, self.encoders[name], layer=layer) for name, layer in sorted(self.layers)
            }
            self.cache[key] = (mono, decoded.sample_rate, mel, speech)
        return self.cache[key]


def features_for(model, mel, speech: dict[int, SpeechFeatures]):
    layers = {layer for _, layer in speech_layers(model)}
    if not layers:
        return mel
    if len(layers) > 1:  # one features object serves the whole ensemble, as in the pipeline
        raise SystemExit("members reading different speech layers are not supported here")
    return MelAndSpeechFeatures(mel, speech[layers.pop()])


def probe(model, clips, train_speakers: set[str], audio: AudioSource) -> dict[str, dict]:
    rows: dict[str, list] = {"unseen": [], "seen": []}
    partners = pick_cross_audio(clips)  # dub eval's pairing (the cache lists the clips in the manifest's order)
    for clip in clips:
        partner = partners[clip.clip_id]
        mono, rate, mel, speech = audio(partner, clip.seconds)
        n = int((clip.times < len(mono) / rate).sum())
        refs = clip.points[reference_indices(clip, model.config.n_refs, None)]
        feats = features_for(model, mel, speech)
        pred = predict_from_features(model, feats, clip.times[:n], clip.points[:n, :N_POSE], refs)
        opening = content_opening(pred)
        used = clip.usable[:n]
        m = int((partner.times < len(mono) / rate).sum())  # the new audio's own frames, as far as it is used
        heard = partner.usable[:m]
        truth = speech_activity(mono, rate, partner.times[:m])[heard]
        rows["seen" if clip.speaker in train_speakers else "unseen"].append(
            (
                correlation(opening, speech_activity(mono, rate, clip.times[:n])),
                correlation(opening[used], clip.opening[:n][used]) if used.sum() > 5 else None,
                correlation(partner.opening[:m][heard], truth) if heard.sum() > 5 else None,
            )
        )

    def mean(values: list, k: int) -> float | None:
        xs = [v[k] for v in values if v[k] is not None]
        return round(float(np.mean(xs)), 3) if xs else None

    return {
        group: {
            "clips": len(v),
            **{k: mean(v, i) for i, k in enumerate(("follows_new_audio", "replays_video", "proxy_ceiling"))},
        }
        for group, v in rows.items()
        if v
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cache", type=Path)
    ap.add_argument("--weights", type=Path, nargs="*", default=[None], help="landmark model folders (default: shipped)")
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--split", default="dev")
    args = ap.parse_args()
    cache = PrepCache(args.cache)
    clips = load_clips(cache, args.split, min_frames=1)
    train_speakers = {r.speaker for r in cache.records("train")}
    models = {str(w or "shipped"): load_landmark_model(w) for w in args.weights}
    audio = AudioSource(args.shared, set().union(*(speech_layers(m) for m in models.values())))
    print("| model | speakers | clips | follows new audio | replays the video | proxy ceiling |")
    print("|---|---|---|---|---|---|")
    for name, model in models.items():
        for group, r in probe(model, clips, train_speakers, audio).items():
            row = [name, group, r["clips"], r["follows_new_audio"], r["replays_video"], r["proxy_ceiling"]]
            print("| " + " | ".join(str(x) for x in row) + " |", flush=True)


if __name__ == "__main__":
    main()
