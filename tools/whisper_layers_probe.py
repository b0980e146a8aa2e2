"""Which of Whisper's layers carry the mouth opening? A ridge probe from each layer (and from combinations) to it.

    python tools/whisper_layers_probe.py ../cache/prep --work ../runs/layers [--jobs 2]
    python tools/whisper_layers_probe.py ../cache/prep --work ../runs/layers-base --encoder ../runs/whisper-base

The probe's clips' sound goes once through a Whisper encoder (the shipped tiny.en, or the folder --encoder names, as
tools/convert_whisper.py writes one), keeping the hidden states after each of its blocks and the normalised output
(for tiny.en 5 x 384 float16 values per 20 ms step, filed under --work, one file per clip; a run resumes where a file
exists). Then, as docs/LANDMARKS.md's earlier probes: a frame's features are the mean of the 3 steps at its centre and
the mean of its 10-step window; a ridge regression fitted on the train split (GRID s1's clips subsampled to 15%)
predicts the opening of the three long unseen dev clips, and the script prints each clip's correlation and their mean
per feature set and ridge strength. No training: a quick answer to whether a completer should read another layer, or
several, or another encoder (docs/LANDMARKS.md "Eleventh session" and "Twelfth session").
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dubber.audio.speech import SpeechFeatures, encode_speech
from dubber.data.cache import PrepCache
from dubber.data.speech_cache import _clip_samples
from dubber.evaluation.metrics import correlation
from dubber.models.speech_encoder import SpeechEncoder
from dubber.training.landmark_data import load_clips
from dubber.weights import load_speech_encoder


def feature_sets(n_layers: int) -> dict[str, tuple[int, ...]]:
    """Each block's state and the output alone, the middle pairs tiny.en's probe asked about, and all of them."""
    sets = {**{f"block{k + 1}": (k,) for k in range(n_layers)}, "output": (n_layers,)}
    if n_layers == 4:
        sets.update({"block2+block3": (1, 2), "block3+output": (2, 4)})
    sets["all"] = tuple(range(n_layers + 1))
    return sets


class AllLayers(torch.nn.Module):
    """The encoder's hidden states after every block and its output, side by side (steps, (n_layers + 1) * d)."""

    def __init__(self, encoder: SpeechEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        # encode_speech sizes its output by config.d_model; it only reads the config, never the layers, with it.
        self.config = replace(encoder.config, d_model=(encoder.config.n_layers + 1) * encoder.config.d_model)

    def forward(self, mel: torch.Tensor, layer: int = 0) -> torch.Tensor:
        enc = self.encoder
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(mel)))).transpose(1, 2)
        x = x + enc.positions[: x.shape[1]].to(x.dtype)
        states = []
        for block in enc.blocks:
            x = block(x)
            states.append(x)
        return torch.cat([*states, enc.norm(x)], -1)


def _encoder(folder: Path | None) -> SpeechEncoder:
    if folder is None:
        return load_speech_encoder("whisper-tiny.en")
    return SpeechEncoder.from_pretrained(folder)


def _dump(args: tuple[Path, Path, Path | None, list[str]]) -> int:
    cache_root, work, encoder_folder, clip_ids = args
    torch.set_num_threads(1)
    model = AllLayers(_encoder(encoder_folder))
    records = {r.clip_id: r for r in PrepCache(cache_root).records(with_audio=True)}
    for clip_id in clip_ids:
        feats = encode_speech(_clip_samples(records[clip_id]), model).steps.astype(np.float16)
        np.save(work / f"{clip_id}.partial.npy", feats)
        (work / f"{clip_id}.partial.npy").replace(work / f"{clip_id}.npy")
    return len(clip_ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="per-clip hidden states (one folder per encoder)")
    ap.add_argument("--encoder", type=Path, default=None, help="a speech encoder folder (default: shipped tiny.en)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cache = PrepCache(args.cache)
    config = _encoder(args.encoder).config
    width = config.d_model

    # The clips only supply times, openings and usable flags here; the shipped features they load go unused.
    spec = ("whisper-tiny.en", 10, False, 3)
    train = load_clips(cache, "train", speech=spec)
    train_speakers = {c.speaker for c in train}
    long_unseen = [
        c for c in load_clips(cache, "dev", speech=spec) if c.speaker not in train_speakers and c.seconds > 3
    ]
    rng = np.random.default_rng(0)
    train = [c for c in train if c.speaker != "grid_s1" or rng.random() < 0.15]
    todo = [c.clip_id for c in train + long_unseen if not (args.work / f"{c.clip_id}.npy").is_file()]
    with ProcessPoolExecutor(args.jobs) as pool:
        jobs = [(args.cache, args.work, args.encoder, todo[i :: args.jobs]) for i in range(args.jobs)]
        list(pool.map(_dump, jobs))
    windows = {
        c.clip_id: SpeechFeatures(np.load(args.work / f"{c.clip_id}.npy")).windows(c.times).astype(np.float32)
        for c in train + long_unseen
    }

    def features(clip, layers: tuple[int, ...]) -> np.ndarray:
        w = windows[clip.clip_id]
        w = np.concatenate([w[..., width * k : width * (k + 1)] for k in layers], -1)
        return np.concatenate([w[:, 4:7].mean(1), w.mean(1)], 1)

    def known(clip) -> np.ndarray:
        return clip.usable & np.isfinite(clip.opening)

    print("clips:", ", ".join(c.speaker for c in long_unseen))
    for name, layers in feature_sets(config.n_layers).items():
        x = np.concatenate([features(c, layers)[known(c)] for c in train])
        y = np.concatenate([c.opening[known(c)] for c in train])
        mean, std = x.mean(0), x.std(0) + 1e-6
        xn = (x - mean) / std
        gram, target = xn.T @ xn, xn.T @ (y - y.mean())
        for lam in (100.0, 1000.0, 10000.0):
            coef = np.linalg.solve(gram + lam * np.eye(len(gram)), target)
            corr = [
                correlation((((features(c, layers) - mean) / std) @ coef)[known(c)], c.opening[known(c)])
                for c in long_unseen
            ]
            print(f"{name:14s} ridge {lam:>7.0f}: {' '.join(f'{v:.3f}' for v in corr)}  mean {np.mean(corr):.3f}")


if __name__ == "__main__":
    main()
