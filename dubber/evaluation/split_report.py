"""The report of ``dub eval --protocol split``: means per method over the clips, per-clip rows, JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dubber.evaluation.split_eval import SplitClipReport
from dubber.pipeline.mouth_lag import MIN_CORRELATION

SPLIT_KEYS = ("opening_correlation", "opening_correlation_at_lag", "lip_shape_lmd", "articulation", "sharpness", "seam")
LARGE_FACE = 400  # frame pixels, cheek to cheek: where a 128 px crop is upscaled 3x or more


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.mean(vals)), 4) if vals else None


def _standard_error(values) -> float | None:
    """The standard error of the mean of ``values`` (None, NaN left out): the spread a mean over these clips has."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.std(vals, ddof=1) / np.sqrt(len(vals))), 4) if len(vals) > 1 else None


def _correlation(report: SplitClipReport, method: str, key: str = "opening_correlation") -> float | None:
    return report.methods.get(method, {}).get(key)


def _paired(ok: list[SplitClipReport], methods: list[str], key: str) -> dict:
    """The dub against each baseline clip by clip: a difference of means is only worth its standard error."""
    out = {}
    for m in methods:
        if m == "dub":
            continue
        d = [
            _correlation(r, "dub", key) - _correlation(r, m, key)
            for r in ok
            if _correlation(r, "dub", key) is not None and _correlation(r, m, key) is not None
        ]
        out[m] = {"mean": _mean(d), "se": _standard_error(d)}
    return out


def summarise_split(reports: list[SplitClipReport]) -> dict:
    ok = [r for r in reports if not r.error]
    methods = sorted({m for r in ok for m in r.methods}, key=lambda m: (m != "dub", m))
    return {
        "clips": len(ok),
        "failed": len(reports) - len(ok),
        "frames": sum(r.frames for r in ok),
        "methods": {m: {k: _mean(r.methods.get(m, {}).get(k) for r in ok) for k in SPLIT_KEYS} for m in methods},
        "opening_correlation_se": {m: _standard_error(_correlation(r, m) for r in ok) for m in methods},
        "dub_minus": _paired(ok, methods, "opening_correlation"),
        "dub_minus_at_lag": _paired(ok, methods, "opening_correlation_at_lag"),
        "planned_opening_correlation": _mean(r.planned_opening_correlation for r in ok),
        "planned_opening_correlation_at_lag": _mean(r.planned_opening_correlation_at_lag for r in ok),
        "mouth_lag_timed": sum(1 for r in ok if r.mouth_lag is not None),
        # How often the lag read on the first half is, within a frame, the one that lines the plan up with the truth
        "mouth_lag_agrees": sum(
            1 for r in ok if r.mouth_lag is not None and r.truth_lag is not None and abs(r.mouth_lag - r.truth_lag) <= 1
        ),
        "follows_plan": _mean(r.follows_plan for r in ok),
        "follows_plan_fast": _mean(r.follows_plan_fast for r in ok),
        "planned_articulation": _mean(r.planned_articulation for r in ok),
        "dub_above_no_dub": sum(
            1
            for r in ok
            if (r.methods["dub"]["opening_correlation"] or -1) > (r.methods["no_dub"]["opening_correlation"] or -1)
        ),
    }


OWN_SPEECH_GROUP = f"mouth follows own sound (>= {MIN_CORRELATION})"


def build_split_report(
    reports: list[SplitClipReport],
    *,
    command: str,
    settings: dict,
    seconds: float,
    seen_speakers: set[str] = frozenset(),
) -> dict:
    """``seen_speakers``: speakers the weights were trained on (a manifest's train split); the others are "unseen"."""
    groups = {"all": reports}
    if seen_speakers:
        groups["unseen"] = [r for r in reports if r.speaker not in seen_speakers]
        groups["seen"] = [r for r in reports if r.speaker in seen_speakers]
    large = [r for r in reports if r.face_width is not None and r.face_width >= LARGE_FACE]
    if large:
        groups[f"faces >= {LARGE_FACE} px"] = large
    # Clips whose first half's mouth was seen to follow its own sound: where some were not (a voice-over, music),
    # these are the ones whose sync score means something.
    matched = [r for r in reports if r.own_speech_match is not None and r.own_speech_match >= MIN_CORRELATION]
    if len(matched) < len(reports) and matched:
        groups[OWN_SPEECH_GROUP] = matched
    return {
        "command": command,
        "protocol": "split",
        "settings": settings,
        "seconds": round(seconds, 1),
        "groups": {name: summarise_split(rs) for name, rs in groups.items() if rs},
        "clips": [r.to_dict() for r in reports],
    }


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def split_markdown(report: dict) -> str:
    s = report["groups"]["all"]
    lines = [
        "# dub eval --protocol split",
        "",
        f"`{report['command']}`",
        "",
        f"{s['clips']} clips ({s['failed']} failed), {s['frames']} frames per half in all, {report['seconds']:.0f} s. "
        "Each clip's first half dubbed with its second half's speech, scored against the second half's mouth.",
        "",
        "| speakers | method | "
        + " | ".join(SPLIT_KEYS)
        + " | planned corr | planned articulation | follows plan | dub above no dub |",
        "|" + "---|" * (len(SPLIT_KEYS) + 6),
    ]
    for group, g in report["groups"].items():
        for m, row in g["methods"].items():
            extra = (
                f"{_fmt(g['planned_opening_correlation'])} | {_fmt(g.get('planned_articulation'))} | "
                f"{_fmt(g.get('follows_plan'))} | {g['dub_above_no_dub']} of {g['clips']}"
            )
            lines.append(
                f"| {group} | {m} | "
                + " | ".join(_fmt(row[k]) for k in SPLIT_KEYS)
                + (f" | {extra} |" if m == "dub" else " | | | | |")
            )
    lines += ["", "The dub's opening correlation minus each baseline's, clip by clip (mean +- standard error):", ""]
    for group, g in report["groups"].items():
        for key, label in (("dub_minus", ""), ("dub_minus_at_lag", " (at lag)")):
            diffs = [f"{m} {_fmt(d['mean'])} +- {_fmt(d['se'])}" for m, d in g.get(key, {}).items()]
            lines.append(f"- {group}{label}: {'; '.join(diffs)}")
    lines += [
        "",
        "planned corr: the opening of the landmarks the completer planned, before rendering, against the truth; "
        "planned articulation: the std of that opening over the truth's; follows plan: the dub's opening against the "
        "planned one (how closely the rendering follows its plan); follows plan, fast: the same for the openings less "
        "their moving mean over 0.28 s (the syllable-rate movement alone). "
        f"Follows plan, fast: {_fmt(s.get('follows_plan_fast'))}. At lag: the dubs timed by the speech against the "
        "truth moved by the lag of the first half's mouth behind its own sound (the recording's offset, which the "
        "truth carries and a dub of the speech cannot show); the other methods as they are. "
        f"Planned corr at lag: {_fmt(s.get('planned_opening_correlation_at_lag'))}; "
        f"{s.get('mouth_lag_timed', 0)} of {s['clips']} first halves timed; on {s.get('mouth_lag_agrees', 0)} of them "
        "the lag is within a frame of the one that lines the plan up with the truth (truth lag).",
        "",
        "| clip | speaker | frames | face px | lag | truth lag | "
        + " | ".join(f"{m} corr" for m in s["methods"])
        + " | dub corr at lag | planned corr | planned articulation | follows plan | dub articulation | "
        "dub sharpness |",
        "|" + "---|" * (len(s["methods"]) + 12),
    ]
    for c in report["clips"]:
        if c["error"]:
            lines.append(f"| {c['clip']} | {c['speaker']} | {c['frames']} | | error: {c['error']} |")
            continue
        corr = " | ".join(_fmt(c["methods"].get(m, {}).get("opening_correlation")) for m in s["methods"])
        dub = c["methods"]["dub"]
        lines.append(
            f"| {c['clip']} | {c['speaker']} | {c['frames']} | {_fmt(c.get('face_width'), 0)} | "
            f"{_fmt(c.get('mouth_lag'))} | {_fmt(c.get('truth_lag'))} | {corr} | "
            f"{_fmt(dub.get('opening_correlation_at_lag'))} | "
            f"{_fmt(c['planned_opening_correlation'])} | {_fmt(c.get('planned_articulation'))} | "
            f"{_fmt(c.get('follows_plan'))} | {_fmt(dub['articulation'])} | "
            f"{_fmt(dub['sharpness'])} |"
        )
    return "\n".join(lines) + "\n"


def write_split_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(split_markdown(report))
