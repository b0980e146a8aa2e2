"""Test-time voice averaging: does averaging the completer over its input heard in several voices help new speakers?

    python tools/voice_average_probe.py ../cache/prep --warps 0.90909 1 1.1 [--weights FOLDER] [--report F]
    python tools/voice_average_probe.py ../cache/prep --pitch 105      # needs `pip install praat-parselmouth`

Each member of the shipped ensemble (or of --weights) predicts from its input heard at every factor of --warps (the
speech members: Whisper's log-mel warped before the encoder, as ``--voice-warp`` trains them; the mel member: its mel
windows warped, as ``--freq-warp`` trains it) and its predictions are averaged before the ensemble's weights apply.
Silent-audio baselines are not warped. Prints what ``dub eval landmarks`` prints for the unseen speakers (LMD against
the static baseline, opening correlation, at the best offset) and the silence opening; ``--warps 1`` reproduces
``dub eval landmarks --align-dir ../shared/data/grid_s1_align``. docs/LANDMARKS.md ("Ninth session") quotes it.

``--pitch HZ [HZ ...]`` hears every clip instead with its voice's median pitch moved to each HZ, formants kept
(Praat's "Change gender", PSOLA; every member's input is computed from the changed sound). It asks whether the
completer is thrown by a pitch it rarely heard (GRID s1, 50 of the 53 train minutes, speaks at 105 Hz); Praat comes
from the GPL package praat-parselmouth, which dubber does not depend on (docs/LANDMARKS.md "Eleventh session").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dubber.audio.augment import warp_frequencies
from dubber.audio.features import AudioFeatures, audio_features
from dubber.audio.speech import SAMPLE_RATE, SpeechFeatures, encode_speech
from dubber.data.cache import PrepCache
from dubber.data.speech_cache import _clip_samples
from dubber.evaluation import landmark_eval
from dubber.media.audio import AudioClip
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.landmark_sequence import predict_sequence
from dubber.training.landmark_data import load_clips, speech_input
from dubber.weights import load_landmark_model, load_speech_encoder


def move_pitch(samples: np.ndarray, median_hz: float) -> np.ndarray:
    """16 kHz ``samples`` with their voice's median pitch moved to ``median_hz``, formants and timing kept."""
    import parselmouth  # GPL, a probe-only import: dubber itself never needs it
    from parselmouth.praat import call

    sound = parselmouth.Sound(samples.astype(np.float64), SAMPLE_RATE)
    moved = call(sound, "Change gender", 60, 500, 1.0, median_hz, 1.0, 1.0)
    return moved.values[0].astype(np.float32)


def voice_averaged_predictor(warps: list[float], pitches: list[float] | None = None):
    """A stand-in for ``landmark_eval._predictor`` whose predictions average over ``warps`` (or over ``pitches``,
    median pitches in Hz, when given)."""
    speech_cache: dict[tuple, np.ndarray] = {}
    voices = [("pitch", hz) for hz in pitches] if pitches else [("warp", f) for f in warps]

    def predictor(model, cache: PrepCache, split: str, stride: int):
        parts = model.members.items() if isinstance(model, LandmarkEnsemble) else [("", model)]
        weights = model.weights if isinstance(model, LandmarkEnsemble) else {"": 1.0}
        records = {r.clip_id: r for r in cache.records(split, with_audio=True)}
        members = []
        for name, m in parts:
            spec = speech_input(m.config)
            encoder = None if spec is None else load_speech_encoder(spec.source)
            clips = {c.clip_id: c for c in load_clips(cache, split, min_frames=m.config.window, speech=spec)}
            members.append((m, weights[name], clips, landmark_eval._silent_windows(m, encoder), spec, encoder))

        def windows(clip, spec, encoder, voice: tuple[str, float]) -> np.ndarray:
            kind, value = voice
            if kind == "pitch":
                key = (clip.clip_id, spec, voice)
                if key not in speech_cache:
                    samples = move_pitch(_clip_samples(records[clip.clip_id]), value)
                    speech_cache[key] = (
                        audio_features(AudioClip(samples[None], SAMPLE_RATE)).mel
                        if spec is None
                        else encode_speech(samples, encoder, layer=spec.layer).steps
                    )
                if spec is None:
                    return AudioFeatures(speech_cache[key]).windows(clip.times).astype(np.float32)
            elif value == 1.0:
                return clip.mel_windows.astype(np.float32)
            elif spec is None:
                return warp_frequencies(clip.mel_windows.astype(np.float32), np.full(len(clip.mel_windows), value))
            key = (clip.clip_id, spec, voice)
            if key not in speech_cache:
                samples = _clip_samples(records[clip.clip_id])
                speech_cache[key] = encode_speech(samples, encoder, layer=spec.layer, warp=value).steps
            features = SpeechFeatures(speech_cache[key])
            features = features.centred() if spec.norm == "clip" else features  # as load_clips centres the own voice
            return features.windows(clip.times, spec.steps).astype(np.float32)

        def predict(clip_id: str, refs: np.ndarray, silent: bool) -> np.ndarray:
            out = 0.0
            for m, w, clips, silence, spec, encoder in members:
                c = clips[clip_id]
                if silent:
                    out = out + w * predict_sequence(m, silence(c), c.pose, refs, stride=stride)
                    continue
                preds = [predict_sequence(m, windows(c, spec, encoder, v), c.pose, refs, stride=stride) for v in voices]
                out = out + w * np.mean(preds, axis=0)
            return out

        return list(members[0][2].values()), predict

    return predictor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--warps", type=float, nargs="+", default=[1 / 1.1, 1.0, 1.1])
    ap.add_argument("--pitch", type=float, nargs="+", default=None, help="median pitches in Hz (instead of --warps)")
    ap.add_argument("--weights", type=Path, default=None, help="a completer or ensemble folder (default: shipped)")
    ap.add_argument("--align-dir", type=Path, default=Path("../shared/data/grid_s1_align"))
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    model = load_landmark_model(args.weights)
    # The eval's clip loop, metrics and baselines stay exactly those of `dub eval landmarks`; only the predictor
    # differs, so the numbers compare with its report.
    landmark_eval._predictor = voice_averaged_predictor(args.warps, args.pitch)
    options = landmark_eval.LandmarkEvalOptions(align_dir=args.align_dir)
    report = landmark_eval.evaluate_landmarks(model, PrepCache(args.cache), options)
    unseen = report.groups["unseen"]
    ratio = unseen["model"]["lmd"] / unseen["static_mean"]["lmd"]
    voices = f"pitch {args.pitch} Hz" if args.pitch else f"warps {args.warps}"
    print(
        f"{voices}: unseen LMD {ratio:.3f} x static, opening corr. {unseen['model']['opening_corr']:.3f} "
        f"(best offset {unseen['model']['opening_corr_best_offset']:.3f}), "
        f"silence {report.silence['predicted_opening']:.4f}"
    )
    if args.report is not None:
        report.write(args.report)


if __name__ == "__main__":
    main()
