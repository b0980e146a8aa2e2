"""Fit a renderer's reference blend on the unseen dev speakers (docs/RENDERER.md "Reference blend").

    .venv/bin/python scripts/fit_reference_blend.py ../cache/prep [--weights FOLDER] [--steps 1] [--per-clip 8]
        [--write [--thresholds LOW HIGH]] [--report fit.json]

Renders the dev samples of `dub eval renderer` with the network alone (mouth-guarded, as dubs keep it), then chooses
the two mismatch thresholds (dubber/render/reference_blend.py) for its mix with the renderer's paste (the nearest
reference, warped onto the target's landmarks when the weights warp their hint) that maximise mean lower-face PSNR
on the dev speakers the renderer never trained on, and prints the fit with its leave-one-speaker-out check and the
two pictures' PSNR by mismatch band.
``--write`` stores the thresholds in FOLDER's renderer.json (the fit's, or ``--thresholds``: the shipped ones were
chosen on the split protocol and speed, not on PSNR, docs/RENDERER.md "Reference blend"), re-runs the full renderer
evaluation with them (the numbers of `dub eval renderer`), and, when FOLDER is the shipped renderer, refreshes its
manifest entry: checksums, the thresholds and the fit, the new metrics and bars.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ship_renderer import renderer_metrics  # scripts/ is on sys.path when a tool runs

from dubber.data.cache import PrepCache
from dubber.evaluation.blend_fit import by_mismatch, fit_reference_blend, renderer_paste
from dubber.evaluation.renderer_eval import build_dev_samples, evaluate_renderer, render_samples
from dubber.evaluation.renderer_monitor import dev_clips_for_eval, face_backend
from dubber.render.face_mask import lower_face_mask
from dubber.render.reference_blend import ReferenceBlend
from dubber.weights import RENDERER_MODEL, load_renderer, read_manifest, register_model, weights_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="renderer folder (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--per-clip", type=int, default=8)
    ap.add_argument("--per-speaker", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--edge", type=float, default=ReferenceBlend.edge, help="border kept from the network (crop side)")
    ap.add_argument("--write", action="store_true", help="store the fit in the folder's renderer.json")
    ap.add_argument(
        "--thresholds", type=float, nargs=2, metavar=("LOW", "HIGH"), help="with --write: store these, not the fit"
    )
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    if args.thresholds and not args.write:
        ap.error("--thresholds is what --write stores: give both")
    try:
        chosen = ReferenceBlend(*args.thresholds, edge=args.edge) if args.thresholds else None
    except ValueError as error:
        ap.error(str(error))

    folder = args.weights or weights_root() / RENDERER_MODEL
    renderer = load_renderer(args.weights)
    cache = PrepCache(args.cache)
    dev = build_dev_samples(
        dev_clips_for_eval(cache, renderer.size, args.per_speaker, 5), renderer.n_refs, args.per_clip
    )
    train_speakers = {r.speaker for split in ("train", "video_only") for r in cache.records(split)}
    unseen = np.array([s not in train_speakers for s in dev.speakers])
    if not unseen.any():
        raise SystemExit(f"{args.cache}: no dev speaker outside the training splits to fit on")
    drawn = render_samples(renderer, dev, steps=args.steps, seed=args.seed, blend=False)
    network, paste, mismatch = renderer_paste(
        drawn,
        dev.landmarks,
        dev.refs,
        dev.ref_landmarks,
        hint_warp=renderer.hint_warp,
        mouth_guard=renderer.mouth_guard,
    )
    speakers = [s for s, u in zip(dev.speakers, unseen, strict=True) if u]
    mask = lower_face_mask(renderer.size)
    fit = fit_reference_blend(
        network[unseen],
        paste[unseen],
        dev.targets[unseen],
        mask,
        mismatch[unseen],
        speakers,
        edge=args.edge,
    )
    command = (
        f"scripts/fit_reference_blend.py CACHE --steps {args.steps} --per-clip {args.per_clip} "
        f"--per-speaker {args.per_speaker} --seed {args.seed} --edge {args.edge:g}"
    )
    bands = by_mismatch(network[unseen], paste[unseen], dev.targets[unseen], mask, mismatch[unseen])
    result = {"fit": fit.to_dict(), "fitted_on": "unseen dev speakers", "by_mismatch": bands, "command": command}
    print(json.dumps(result, indent=1))
    if args.write:
        blend = chosen or fit.blend
        renderer.reference_blend = blend
        # Evaluate before touching any file, so a failure leaves the folder and the manifest as they were.
        report, _ = evaluate_renderer(
            renderer, dev, steps=args.steps, seed=args.seed, backend=face_backend(), train_speakers=train_speakers
        )
        settings_path = folder / "renderer.json"
        settings = json.loads(settings_path.read_text())
        settings["reference_blend"] = blend.to_dict()
        staged = settings_path.with_name(settings_path.name + ".tmp")
        staged.write_text(json.dumps(settings, indent=1) + "\n")
        staged.replace(settings_path)
        result["eval"] = {k: v for k, v in report.to_dict().items() if k != "per_sample"}
        print(json.dumps(result["eval"]["groups"], indent=1))
        print(json.dumps(result["eval"]["bars"], indent=1))
        root = weights_root()
        if folder.resolve() == (root / RENDERER_MODEL).resolve():
            entry = dict(read_manifest(root)["models"][RENDERER_MODEL])
            for key in ("folder", "files"):
                entry.pop(key)
            written = " --write" + (f" --thresholds {blend.paste_below:g} {blend.model_above:g}" if chosen else "")
            entry["reference_blend"] = {
                "settings": blend.to_dict(),
                "psnr_fit": fit.to_dict(),
                "chosen_by": "split protocol and 720p speed (docs/RENDERER.md 'Reference blend')"
                if chosen
                else "mean lower-face PSNR of the unseen dev speakers",
                "command": command + written,
            }
            entry["metrics"] = renderer_metrics(result["eval"])
            entry["bars"] = result["eval"]["bars"]
            entry["eval"] = (
                f"dub eval renderer --data CACHE --steps {args.steps} --per-clip {args.per_clip} (dev split)"
            )
            register_model(RENDERER_MODEL, root / RENDERER_MODEL, entry, root)
            print(f"updated the manifest entry {RENDERER_MODEL}")
    if args.report:
        args.report.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
