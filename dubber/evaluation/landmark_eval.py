"""``dub eval landmarks``: the landmark completer on held-out speakers against ground truth from the video.

Per clip (usable frames only): LMD in crop units and over the inter-ocular distance, mouth-opening correlation
over time, velocity error. Baselines in the same run: (a) the speaker's static mean lip/jaw shape, (b) the model
with the audio replaced by silence. With GRID alignments, the predicted mouth opening inside silent spans is checked
against the speaker's resting opening.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dubber.data.cache import PrepCache
from dubber.data.clip_arrays import ClipArrays, content_opening, load_clips, reference_indices, speech_input
from dubber.evaluation.alignments import find_align, read_align, silence_mask
from dubber.evaluation.metrics import correlation, lagged_correlation, lmd, nanmean, velocity_error
from dubber.models.landmark_completer import LandmarkCompleter
from dubber.models.landmark_ensemble import LandmarkEnsemble
from dubber.models.landmark_sequence import predict_sequence
from dubber.models.speech_encoder import SpeechEncoder

METHODS = ("model", "static_mean", "silent_audio")


@dataclass(frozen=True)
class LandmarkEvalOptions:
    split: str = "dev"
    min_corr_seconds: float = 3.0  # correlation bar: clips longer than this
    align_dir: Path | None = None
    silence_margin: float = 0.12
    stride: int = 1
    max_offset_seconds: float = 0.2  # the audio-video offset searched for the "best offset" correlation


@dataclass
class LandmarkEvalReport:
    split: str
    clips: list[dict]
    groups: dict[str, dict[str, dict]]  # group -> method -> metric -> value
    silence: dict
    bars: dict[str, dict]
    seconds: float
    train_speakers: list[str] = field(default_factory=list)
    max_offset_seconds: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, default=float))

    def markdown(self) -> str:
        lines = [
            "| speakers | method | LMD (crop) | LMD / inter-ocular | opening corr. (clips > 3 s) | velocity err. |"
        ]
        lines.append("|---|---|---|---|---|---|")
        for group, methods in self.groups.items():
            for m, s in methods.items():
                corr = "-" if s["opening_corr"] is None else f"{s['opening_corr']:.3f}"
                lines.append(
                    f"| {group} ({s['clips']} clips) | {m} | {s['lmd']:.4f} | {s['lmd_io']:.4f} | {corr} | "
                    f"{s['velocity_error']:.5f} |"
                )
        lines.append("")
        lines.append(f"At each clip's best audio offset (+-{self.max_offset_seconds:g} s; a clip whose sound is late")
        lines.append("against its picture makes an audio-driven prediction late):")
        for r in self.clips:
            m = r["model"]
            if m["opening_corr"] is not None and m["opening_corr_best_offset"] is not None:
                lines.append(
                    f"- {r['speaker']}: opening corr. {m['opening_corr']:.3f} -> {m['opening_corr_best_offset']:.3f}"
                    f" with the prediction shifted {m['best_offset_frames']:+d} frames"
                )
        return "\n".join(lines)


def speaker_means(clips: list[ClipArrays]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for c in clips:
        out.setdefault(c.speaker, []).append(c.content[c.usable])
    return {k: np.concatenate(v).mean(axis=0) for k, v in out.items()}


def _clip_scores(pred: np.ndarray, clip: ClipArrays, long_enough: bool, max_offset: int) -> dict:
    u = clip.usable
    truth = clip.content[u]
    p = pred[u]
    corr = correlation(content_opening(p), content_opening(truth)) if long_enough else None
    offset, synced = (0, None)
    if long_enough:  # on the whole timeline (NaN where unusable), so a shift moves by real frames
        offset, synced = lagged_correlation(
            np.where(u, content_opening(pred), np.nan), np.where(u, clip.opening, np.nan), max_offset
        )
    return {
        "lmd": lmd(p, truth),
        "lmd_io": lmd(p, truth, clip.inter_ocular[u]),
        "opening_corr": corr,
        "opening_corr_best_offset": synced,
        "best_offset_frames": offset,
        "velocity_error": velocity_error(p, truth),
        "frames": int(u.sum()),
    }


def _silent_windows(model: LandmarkCompleter, encoder: SpeechEncoder | None):
    """clip -> the windows ``model`` reads for a silent sound track as long as the clip's (``encoder``: the speech
    encoder it reads, None for a mel completer)."""
    if encoder is None:
        return lambda clip: np.full_like(clip.audio_windows, -4.0, dtype=np.float32)
    from dubber.audio.features import AudioFeatures
    from dubber.audio.speech import SAMPLE_RATE, MelAndSpeechFeatures, encode_speech

    def silent(clip: ClipArrays) -> np.ndarray:
        seconds = float(clip.times[-1]) + 0.5
        samples = np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)
        speech = encode_speech(samples, encoder, layer=model.config.speech_layer)
        if model.config.audio_input == "mel+speech":
            return MelAndSpeechFeatures(AudioFeatures.silence(seconds), speech).windows(clip.times)
        return speech.windows(clip.times, model.config.audio_steps)

    return silent


def _predictor(model: LandmarkCompleter | LandmarkEnsemble, cache: PrepCache, split: str, stride: int):
    """The split's clips and ``predict(clip_id, refs, silent)``: the model's points (an ensemble's weighted mean,
    each member reading its own audio input), with the clip's audio or with silence."""
    parts = model.members.items() if isinstance(model, LandmarkEnsemble) else [("", model)]
    weights = model.weights if isinstance(model, LandmarkEnsemble) else {"": 1.0}
    members = []
    for name, m in parts:
        spec, encoder = speech_input(m.config), None
        if spec is not None:  # a cache prepared without them (or for other features) gains them here
            from dubber.data.speech_cache import add_speech_features
            from dubber.weights import load_speech_encoder

            encoder = load_speech_encoder(spec.source)
            add_speech_features(cache.root, cache.records(split, with_audio=True), encoder, layer=spec.layer)
        clips = {c.clip_id: c for c in load_clips(cache, split, min_frames=m.config.window, speech=spec)}
        members.append((m, weights[name], clips, _silent_windows(m, encoder)))

    def predict(clip_id: str, refs: np.ndarray, silent: bool) -> np.ndarray:
        out = 0.0
        for m, w, clips, silence in members:
            c = clips[clip_id]
            windows = silence(c) if silent else c.audio_windows.astype(np.float32)
            out = out + w * predict_sequence(m, windows, c.pose, refs, stride=stride)
        return out

    return list(members[0][2].values()), predict


def evaluate_landmarks(
    model: LandmarkCompleter | LandmarkEnsemble,
    cache: PrepCache,
    options: LandmarkEvalOptions | None = None,
    *,
    train_speakers: set[str] | None = None,
) -> LandmarkEvalReport:
    """Score ``model`` on every clip of ``options.split`` that has audio."""
    options = options or LandmarkEvalOptions()
    t0 = time.perf_counter()
    clips, predict = _predictor(model, cache, options.split, options.stride)
    if train_speakers is None:
        train_speakers = {r.speaker for r in cache.records("train")}
    means = speaker_means(clips)
    silence_stats: dict[str, list] = {"predicted": [], "rest": [], "range": [], "clips": []}
    rows = []
    for clip in clips:
        refs = clip.points[reference_indices(clip, model.config.n_refs, None)]
        preds = {
            "model": predict(clip.clip_id, refs, silent=False),
            "static_mean": np.broadcast_to(means[clip.speaker], clip.content.shape),
            "silent_audio": predict(clip.clip_id, refs, silent=True),
        }
        long_enough = clip.seconds > options.min_corr_seconds
        max_offset = max(1, round(options.max_offset_seconds / float(np.median(np.diff(clip.times)))))
        row = {
            "clip_id": clip.clip_id,
            "speaker": clip.speaker,
            "seconds": round(clip.seconds, 3),
            "seen_speaker": clip.speaker in train_speakers,
            **{m: _clip_scores(p, clip, long_enough, max_offset) for m, p in preds.items()},
        }
        align = find_align(options.align_dir, clip.source)
        if align is not None:
            sil = silence_mask(clip.times, read_align(align), options.silence_margin) & clip.usable
            if sil.sum() >= 3:
                row["silence_opening"] = float(content_opening(preds["model"][sil]).mean())
                row["silence_truth_opening"] = float(np.nanmean(clip.opening[sil]))
                silence_stats["predicted"].append(row["silence_opening"])
                silence_stats["clips"].append(clip.clip_id)
        rows.append(row)
    groups = {
        "unseen": [r for r in rows if not r["seen_speaker"]],
        "seen (held-out clips)": [r for r in rows if r["seen_speaker"]],
        "all": rows,
    }
    summary = {g: _summarise(rs) for g, rs in groups.items() if rs}
    silence = _silence_summary(clips, silence_stats, set(silence_stats["clips"]))
    bars = _bars(summary, silence)
    return LandmarkEvalReport(
        options.split,
        rows,
        summary,
        silence,
        bars,
        time.perf_counter() - t0,
        sorted(train_speakers),
        options.max_offset_seconds,
    )


def _summarise(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for m in METHODS:
        out[m] = {
            "clips": len(rows),
            "speakers": len({r["speaker"] for r in rows}),
            # Speaker-level means first, so one speaker with 50 clips does not outweigh six with one each.
            "lmd": _by_speaker(rows, m, "lmd"),
            "lmd_io": _by_speaker(rows, m, "lmd_io"),
            "velocity_error": _by_speaker(rows, m, "velocity_error"),
            "opening_corr": nanmean(r[m]["opening_corr"] for r in rows),
            "opening_corr_best_offset": nanmean(r[m]["opening_corr_best_offset"] for r in rows),
            "corr_clips": sum(r[m]["opening_corr"] is not None for r in rows),
        }
    return out


def _by_speaker(rows: list[dict], method: str, key: str) -> float:
    per: dict[str, list[float]] = {}
    for r in rows:
        per.setdefault(r["speaker"], []).append(r[method][key])
    return float(np.mean([np.nanmean(v) for v in per.values()]))


def _silence_summary(clips: list[ClipArrays], stats: dict, with_align: set[str]) -> dict:
    if not stats["predicted"]:
        return {"clips": 0}
    speakers = {c.speaker for c in clips if c.clip_id in with_align}
    opening = np.concatenate([c.opening[c.usable] for c in clips if c.speaker in speakers])
    rest, lo, hi = np.percentile(opening, [10, 5, 95])
    limit = float(rest + 0.1 * (hi - lo))
    predicted = float(np.mean(stats["predicted"]))
    return {
        "clips": len(stats["predicted"]),
        "speakers": sorted(speakers),
        "predicted_opening": predicted,
        "rest_opening": float(rest),
        "opening_range": float(hi - lo),
        "limit": limit,
        "passes": predicted <= limit,
    }


def _bars(summary: dict, silence: dict) -> dict[str, dict]:
    bars: dict[str, dict] = {}
    unseen = summary.get("unseen")
    if unseen:
        ratio = unseen["model"]["lmd"] / max(unseen["static_mean"]["lmd"], 1e-12)
        bars["lmd_vs_static_unseen"] = {"value": ratio, "target": "<= 0.7", "passes": ratio <= 0.7}
        corr = unseen["model"]["opening_corr"]
        bars["opening_corr_unseen"] = {"value": corr, "target": ">= 0.6", "passes": corr is not None and corr >= 0.6}
    if silence.get("clips"):
        bars["silence_rest"] = {
            "value": silence["predicted_opening"],
            "target": f"<= {silence['limit']:.4f}",
            "passes": silence["passes"],
        }
    return bars
