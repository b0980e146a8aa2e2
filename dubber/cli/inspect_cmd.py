"""``dub inspect VIDEO``: streams, faces found, face size, head turns; optional overlay preview."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import typer
from rich.table import Table

from dubber.cli.output import frame_progress, print_json, stderr


def _fmt_range(r: tuple[float, float] | None) -> str:
    return "-" if r is None else f"{r[0]:+.0f}° .. {r[1]:+.0f}°"


def _table(report) -> Table:
    media = report.media
    v, a = media.video, media.audio
    t = Table(title=str(media.path), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("container", f"{media.format_name}, {media.duration:.2f} s")
    rot = f", rotated {v.rotation}°" if v.rotation else ""
    aspect = ""
    if (sar := v.sample_aspect) is not None:
        shown = Fraction(v.width) * sar / v.height
        aspect = f", pixel aspect {sar.numerator}:{sar.denominator} (shown {shown.numerator}:{shown.denominator})"
    vfr = ", variable frame rate" if v.variable_frame_rate else ""
    untimed = "" if v.timestamps else ", no timestamps (read at this rate)"
    pixels = "".join(f", {p}" for p in (v.pix_fmt, v.colour.describe()) if p)
    t.add_row(
        "video",
        f"{v.codec} {v.width}x{v.height}{rot}{aspect}, {float(v.fps):.3f} fps "
        f"({v.fps.numerator}/{v.fps.denominator}){vfr}{untimed}, {v.frame_count} frames, {v.duration:.2f} s{pixels}",
    )
    extras = report.extras
    if title := extras.tags.get("title"):
        t.add_row("title", title)
    spoken = f", language {extras.audio_language}" if extras.audio_language else ""
    if len(extras.audio) > 1:  # what --keep-original-audio keeps beside the new speech
        spoken += f"; {len(extras.audio) - 1} more: " + ", ".join(a.language or "und" for a in extras.audio[1:])
    t.add_row("audio", f"{a.codec} {a.sample_rate} Hz, {a.channels} ch, {a.duration:.2f} s{spoken}" if a else "none")
    subtitles = [f"{s.language or 'und'} ({s.codec}{'' if s.text else ', bitmaps'})" for s in extras.subtitles]
    t.add_row("subtitles", ", ".join(subtitles) or "none")
    chapters = ", ".join(f"{c.title or '-'} {c.start:.2f} s" for c in extras.chapters[:6])
    more = f" (+{len(extras.chapters) - 6} more)" if len(extras.chapters) > 6 else ""
    t.add_row("chapters", f"{len(extras.chapters)}: {chapters}{more}" if extras.chapters else "none")
    t.add_row("frames with a face", f"{report.frames_with_face}/{report.frames} ({100 * report.face_ratio:.1f}%)")
    spans = ", ".join(f"{s.start:.2f}-{s.end:.2f} s" for s in report.no_face_spans[:8])
    more = f" (+{len(report.no_face_spans) - 8} more)" if len(report.no_face_spans) > 8 else ""
    t.add_row("without a face", (spans + more) or "none")
    size = report.median_face_size
    t.add_row("median face size", f"{size:.0f} px" if size else "-")
    t.add_row(
        "head yaw / pitch / roll",
        " / ".join(_fmt_range(r) for r in (report.yaw_range, report.pitch_range, report.roll_range)),
    )
    t.add_row("scene cuts", str(report.scene_cuts))
    faces = str(report.most_faces)
    if report.most_faces > 1:  # what --face can pick
        faces += f" (--face 0 the largest .. --face {report.most_faces - 1})"
    t.add_row("faces in one frame", faces)
    told = str(report.people) if report.people else "none facing the camera"
    if report.persons:  # as --person numbers them
        told += (
            " (" + "; ".join(f"{p.person}: {p.frames} frames from {p.first_seen:.2f} s" for p in report.persons) + ")"
        )
    t.add_row("people told apart", told)
    if report.preview:
        t.add_row("preview", str(report.preview))
    return t


def inspect_command(
    video: Path = typer.Argument(..., help="Video file to inspect.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    preview: Path | None = typer.Option(
        None,
        "--preview",
        help="Write the video with landmarks and crop box drawn (mp4/mov/mkv/webm).",
        show_default=False,
    ),
    face: str = typer.Option("0", "--face", help="Which face: 0 the largest, 1 the next, ...; left or right."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing preview file."),
) -> None:
    """Show streams, faces found (and where not), face size and head-turn range."""
    from dubber.cli.dub_options import parse_face
    from dubber.face.tracker import TrackerOptions
    from dubber.inspection import inspect_video

    index, side = parse_face(face)
    show_progress = stderr.is_terminal
    with frame_progress("inspecting", show_progress) as bar:
        task = bar.add_task("inspecting", total=None, rate="")
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.0f} frames/s")

        report = inspect_video(
            video,
            preview=preview,
            overwrite=overwrite,
            tracker_options=TrackerOptions(face_index=index, face_side=side),
            progress=progress,
        )
    if json_out:
        print_json(report.to_dict())
    else:
        stderr.print(_table(report))
