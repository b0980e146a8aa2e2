"""The ``dub eval`` report: per-split and per-clip tables, ``report.json`` and ``report.md``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dubber.evaluation.dub_eval import METHODS, ClipReport

RECON_KEYS = (
    "psnr_lower",
    "ssim_lower",
    "psnr_frame",
    "ssim_frame",
    "lmd",
    "opening_correlation",
    "jitter",
    "face_lost",
    "seam",
)
CROSS_KEYS = ("opening_vs_speech", "jitter", "face_lost", "seam")


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.mean(vals)), 4) if vals else None


def summarise(reports: list[ClipReport]) -> dict:
    ok = [r for r in reports if not r.error]
    out = {"clips": len(ok), "failed": len(reports) - len(ok), "frames": sum(r.frames for r in ok)}
    out["reconstruction"] = {
        m: {k: _mean(r.reconstruction.get(m, {}).get(k) for r in ok) for k in RECON_KEYS} for m in METHODS
    }
    crossed = [r for r in ok if r.cross]
    out["cross"] = {k: _mean(r.cross.get(k) for r in crossed) for k in CROSS_KEYS} if crossed else {}
    return out


def build_report(reports: list[ClipReport], *, command: str, settings: dict, seconds: float, plot: str | None) -> dict:
    splits = sorted({r.split for r in reports})
    return {
        "command": command,
        "settings": settings,
        "seconds": round(seconds, 1),
        "floor": "the untouched video scored against itself: PSNR capped at 100 dB, SSIM 1, LMD 0, seam 1",
        "all": summarise(reports),
        "splits": {s: summarise([r for r in reports if r.split == s]) for s in splits},
        "opening_plot": plot,
        "clips": [r.to_dict() for r in reports],
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown(report: dict) -> str:
    lines = [
        "# dub eval",
        "",
        f"`{report['command']}`",
        "",
        f"{report['all']['clips']} clips, "
        f"{report['all']['frames']} frames, {report['seconds']:.0f} s. {report['floor']}.",
        "",
    ]
    header = "| split | method | " + " | ".join(RECON_KEYS) + " |"
    lines += ["## Reconstruction (own audio)", "", header, "|" + "---|" * (len(RECON_KEYS) + 2)]
    for name, summary in [("all", report["all"]), *report["splits"].items()]:
        for m in METHODS:
            row = summary["reconstruction"][m]
            lines.append(f"| {name} | {m} | " + " | ".join(_fmt(row[k]) for k in RECON_KEYS) + " |")
    lines += [
        "",
        "## Cross-dubbing (another speaker's audio)",
        "",
        "| split | " + " | ".join(CROSS_KEYS) + " |",
        "|" + "---|" * (len(CROSS_KEYS) + 1),
    ]
    for name, summary in [("all", report["all"]), *report["splits"].items()]:
        if summary["cross"]:
            lines.append(f"| {name} | " + " | ".join(_fmt(summary["cross"][k]) for k in CROSS_KEYS) + " |")
    lines += [
        "",
        "## Clips",
        "",
        "| clip | speaker | split | frames | PSNR lower dub / static | LMD dub / static | "
        "opening corr dub | seam dub | cross opening vs speech | pictures |",
        "|" + "---|" * 10,
    ]
    for c in report["clips"]:
        if c["error"]:
            lines.append(f"| {c['clip']} | {c['speaker']} | {c['split']} | failed: {c['error']} | | | | | | |")
            continue
        d, s = c["reconstruction"]["dub"], c["reconstruction"]["static_mouth"]
        pics = " ".join(f"[{k.replace('_', ' ')}]({v})" for k, v in c["pictures"].items())
        lines.append(
            f"| {c['clip']} | {c['speaker']} | {c['split']} | {c['frames']} | {_fmt(d['psnr_lower'])} / "
            f"{_fmt(s['psnr_lower'])} | {_fmt(d['lmd'])} / {_fmt(s['lmd'])} | {_fmt(d['opening_correlation'])} | "
            f"{_fmt(d['seam'])} | {_fmt(c['cross'].get('opening_vs_speech'))} | {pics} |"
        )
    if report.get("opening_plot"):
        lines += ["", f"![mouth opening over time]({report['opening_plot']})"]
    return "\n".join(lines) + "\n"


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (folder / "report.md").write_text(markdown(report))
    return folder / "report.json", folder / "report.md"
