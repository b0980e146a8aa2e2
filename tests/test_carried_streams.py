"""What an output carries besides its frames: the source's subtitle tracks, tags and chapters, a subtitle file of the
new speech, and the languages and roles of its audio tracks; the writer alone, then ``dub`` end to end with the tiny
weights bundle."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dubber.cli.app import run
from dubber.errors import InputError
from dubber.media import probe_media
from dubber.media.container import sound_lead
from dubber.media.stream_tags import (
    carried_tags,
    chapters_until,
    codec_name,
    language_code,
    read_extras,
    stream_language,
)
from dubber.media.subtitle_feed import SubtitleSource, check_subtitle_file, subtitle_codec
from dubber.media.video_writer import VideoWriter
from dubber.pipeline.batch import items_from_folders, items_from_manifest
from dubber.pipeline.output_streams import output_streams
from dubber.pipeline.timeline import Timeline
from tests.media_factory import make_audio, make_face_video, make_subtitles, make_video, with_extras
from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

D = av.stream.Disposition
CUES = [(0.2, 1.0, "Hello there"), (1.2, 1.8, "Second line")]
FONT = b"\x00\x01\x00\x00 a stand-in for a font's bytes " * 8


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


def cues_of(path: Path, index: int) -> list[tuple[float, float, str]]:
    """Each cue of stream ``index`` (start s, end s, text) as a player reads it, on the video's clock."""
    with av.open(str(path)) as f:
        stream, video = f.streams[index], f.streams.video[0]
        zero = float(video.start_time * video.time_base) if video.start_time else 0.0
        out = []
        for packet in f.demux(stream):
            cue = stream.codec_context.decode2(packet) if packet.size else None
            if cue:
                text = cue[0].ass.decode().split(",", 8)[-1]
                start = float(packet.pts * packet.time_base) - zero
                out.append((round(start, 3), round(start + float(packet.duration * packet.time_base), 3), text))
        return out


def attachments_of(path: Path) -> list[tuple[str, str, bytes]]:
    with av.open(str(path)) as f:
        return [(s.metadata["filename"], s.mimetype, s.data) for s in f.streams if s.type == "attachment"]


def audio_packets(path: Path, k: int) -> list[bytes]:
    with av.open(str(path)) as f:
        return [bytes(p) for p in f.demux(f.streams.audio[k]) if p.size]


def streams_of(path: Path) -> list[tuple[str, str | None, str | None, int]]:
    """(type, codec, language, disposition) of each audio and subtitle stream."""
    with av.open(str(path)) as f:
        return [
            (s.type, codec_name(s), stream_language(s.metadata), int(s.disposition))
            for s in f.streams
            if s.type in ("audio", "subtitle")
        ]


# -- choices ----------------------------------------------------------------------------------------------------------
def test_each_container_holds_its_own_subtitle_codecs():
    assert subtitle_codec("mp4", "mov_text", True) == ("mov_text", True)
    assert subtitle_codec("mp4", "subrip", True) == ("mov_text", False)
    assert subtitle_codec("mov", "ass", True) == ("mov_text", False)
    assert subtitle_codec("matroska", "subrip", True) == ("subrip", True)
    assert subtitle_codec("matroska", "ass", True) == ("ass", True)
    assert subtitle_codec("matroska", "mov_text", True) == ("subrip", False)
    assert subtitle_codec("matroska", "hdmv_pgs_subtitle", False) == ("hdmv_pgs_subtitle", True)
    assert subtitle_codec("webm", "subrip", True) == ("webvtt", False)
    assert subtitle_codec("webm", "webvtt", True) == ("webvtt", True)
    assert subtitle_codec("mp4", "hdmv_pgs_subtitle", False) is None
    assert subtitle_codec("webm", "dvd_subtitle", False) is None


def test_tags_that_describe_the_sources_encoding_stay_behind():
    tags = {"title": "A film", "ENCODER": "Lavf", "major_brand": "isom", "DURATION": "00:00:01", "rotate": "90"}
    kept = carried_tags({**tags, "artist": "Someone", "_STATISTICS_TAGS": "x"})
    assert kept == {"title": "A film", "artist": "Someone"}
    assert language_code(" SPA ") == "spa"
    for bad in ("es", "spanish", "sp1", ""):
        with pytest.raises(ValueError, match="three-letter ISO 639-2"):
            language_code(bad)
    assert stream_language({"language": "und"}) is None and stream_language({"language": "eng"}) == "eng"
    assert stream_language(None) is None


def test_chapters_stop_at_the_outputs_end():
    from dubber.media.stream_tags import Chapter

    ms = Fraction(1, 1000)
    marks = (Chapter(0.0, 1.0, "One"), Chapter(1.0, 3.0, None), Chapter(3.0, 4.0, "Three"))
    assert chapters_until(marks, 2.5) == [
        {"id": 1, "start": 0, "end": 1000, "time_base": ms, "metadata": {"title": "One"}},
        {"id": 2, "start": 1000, "end": 2500, "time_base": ms, "metadata": {}},
    ]


# -- the writer ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A Matroska video (1 s of 25 fps, with sound) carrying an English forced subtitle track, chapters and tags."""
    folder = tmp_path_factory.mktemp("extras")
    plain = make_video(folder / "plain.mp4", frames=50, audio_rate=16000)
    subs = make_subtitles(folder / "en.srt", CUES)
    return with_extras(
        plain,
        folder / "source.mkv",
        subtitles=[(subs, {"language": "eng", "title": "English"}, int(D.forced))],
        chapters=[(0.0, 1.0, "Intro"), (1.0, 2.0, "Rest")],
        tags={"title": "Source title", "ARTIST": "Someone"},
        audio_tags={"language": "eng"},
    )


def test_the_source_says_what_it_carries(source):
    extras = read_extras(source)
    assert extras.tags == {"title": "Source title", "ARTIST": "Someone"}
    assert extras.audio_language == "eng"
    ((sub),) = extras.subtitles
    assert (sub.codec, sub.language, sub.text, sub.disposition) == ("subrip", "eng", True, int(D.forced))
    assert [c.title for c in extras.chapters] == ["Intro", "Rest"]


@pytest.mark.parametrize("suffix, codec", [(".mp4", "mov_text"), (".mkv", "subrip"), (".webm", "webvtt")])
def test_the_writer_moves_cues_onto_its_clock_and_cuts_them_at_its_end(tmp_path, source, suffix, codec):
    extras = read_extras(source)
    (sub,) = extras.subtitles
    new = make_subtitles(tmp_path / "new.srt", [(0.1, 0.5, "Hola"), (0.9, 2.0, "Adiós")])
    carried = SubtitleSource(source, sub.index, -extras.video_start, 1.5, tuple(sub.tags.items()), sub.disposition)
    added = SubtitleSource(new, None, 0.4, 1.5, (("language", "spa"),))
    out = tmp_path / f"out{suffix}"
    with VideoWriter(
        out,
        width=64,
        height=48,
        fps=Fraction(25),
        subtitles=[carried, added],
        tags=extras.tags,
        video_tags={"language": "eng"},
        chapters=chapters_until(extras.chapters, 1.5),
    ) as writer:
        for _ in range(38):  # 1.52 s
            writer.write(np.zeros((48, 64, 3), np.uint8))
    # The source's cues keep their times, the file's start 0.4 s later; nothing runs past 1.5 s.
    assert cues_of(out, 1) == [(0.2, 1.0, "Hello there"), (1.2, 1.5, "Second line")]
    assert cues_of(out, 2) == [(0.5, 0.9, "Hola"), (1.3, 1.5, "Adiós")]
    assert [s[:3] for s in streams_of(out)] == [("subtitle", codec, "eng"), ("subtitle", codec, "spa")]
    with av.open(str(out)) as f:
        assert f.metadata["title"] == "Source title"
        assert stream_language(f.streams.video[0].metadata) == "eng"
        zero = extras.video_start
        assert [(round(float(c["start"] * c["time_base"]), 3), c["metadata"].get("title")) for c in f.chapters()] == [
            (0.0, "Intro"),
            (round(1.0 - zero, 3), "Rest"),
        ]
        assert int(f.streams.subtitles[0].disposition) & D.forced


def test_cues_that_start_together_reach_mp4_in_order(tmp_path):
    together = make_subtitles(tmp_path / "both.srt", [(0.2, 0.6, "Top"), (0.2, 0.8, "Bottom")])
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=64, height=48, fps=Fraction(25), subtitles=[SubtitleSource(together)]) as writer:
        for _ in range(25):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    # MP4's mov_text shows one cue at a time: each until the next one starts.
    assert cues_of(out, 1) == [(0.2, 0.201, "Top"), (0.201, 0.801, "Bottom")]


def test_a_sources_track_that_cannot_be_carried_is_left_out_but_a_given_file_fails(tmp_path, caplog):
    subs = make_subtitles(tmp_path / "a.srt", CUES)
    gone = SubtitleSource(subs, stream=7, optional=True)  # no such stream: as a track FFmpeg cannot convert
    out = tmp_path / "out.mkv"
    with VideoWriter(out, width=64, height=48, fps=Fraction(25), subtitles=[gone, SubtitleSource(subs)]) as writer:
        for _ in range(10):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    assert (
        writer.left_out == [gone]
        and "a.srt: no subtitle stream to carry; that subtitle track is left out" in caplog.text
    )
    assert [s[0] for s in streams_of(out)] == ["subtitle"]
    with pytest.raises(InputError, match="no subtitle stream to carry"):
        with VideoWriter(
            tmp_path / "no.mkv", width=64, height=48, fps=Fraction(25), subtitles=[replace(gone, optional=False)]
        ):
            pass
    assert not (tmp_path / "no.mkv").exists()


def test_a_subtitle_file_must_hold_subtitles(tmp_path):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.2)
    with pytest.raises(InputError, match="speech.wav: no subtitle stream"):
        check_subtitle_file(speech, tmp_path / "out.mp4")
    check_subtitle_file(make_subtitles(tmp_path / "a.srt", CUES), tmp_path / "out.webm")


def test_the_new_speechs_subtitles_start_with_it(tmp_path, source):
    new = make_subtitles(tmp_path / "new.srt", CUES)
    info = probe_media(source)
    timeline = Timeline(50, 10, keep_rest=True, lead_frames=15)  # the dub 0.6-1.0 s of 2 s
    streams = output_streams(source, new, info, tmp_path / "o.mkv", timeline, 25.0, language="spa", subtitles=new)
    carried, added = streams.subtitles
    assert (carried.shift, carried.until) == (pytest.approx(-read_extras(source).video_start), 2.0)
    assert (added.shift, added.until, added.tags) == (0.6, 1.0, (("language", "spa"),))
    assert streams.tracks == [
        {"type": "audio", "language": "spa", "from": "audio"},
        {"type": "subtitle", "language": "eng", "from": "video"},
        {"type": "subtitle", "language": "spa", "from": "subtitles"},
    ]


def test_a_silent_source_has_no_original_to_keep(tmp_path, caplog):
    silent = make_video(tmp_path / "silent.mp4", frames=10)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.4)
    streams = output_streams(
        silent, speech, probe_media(silent), tmp_path / "o.mp4", Timeline(10, 10), 25.0, keep_original=True
    )
    assert len(streams.audio) == 1 and streams.audio[0].disposition == int(D.default)  # no dub beside an original
    assert "silent.mp4 has no audio: no original track to keep" in caplog.text


# -- dub end to end --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face_source(tmp_path_factory) -> Path:
    """A talking face whose English sound has a French dub of its own beside it, an English forced subtitle track,
    chapters and a title."""
    folder = tmp_path_factory.mktemp("face")
    clip = make_face_video(folder / "face.mp4", frames=20, audio_rate=16000)
    french = make_audio(folder / "fr.m4a", seconds=0.8, freqs=(500.0,))
    subs = make_subtitles(folder / "en.srt", [(0.1, 0.5, "Hello")])
    return with_extras(
        clip,
        folder / "face.mkv",
        subtitles=[(subs, {"language": "eng"}, int(D.forced))],
        chapters=[(0.0, 0.4, "Start"), (0.4, 0.8, "End")],
        tags={"title": "Talk"},
        audio_tags={"language": "eng"},
        more_audio=[(french, {"language": "fra"}, int(D.dub))],
        attachments=[("Subtitle Font.ttf", "font/ttf", FONT)],
    )


def dub(*args) -> int:
    return run(["video", *map(str, args), "--weights", TINY_BUNDLE, "--crf", "0", "--preset", "ultrafast"])


def test_a_dub_keeps_what_its_source_carries_and_labels_its_languages(
    tmp_path, tiny_root, face_source, monkeypatch, capfd
):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    speech = make_audio(tmp_path / "speech.wav", seconds=0.8)
    new = make_subtitles(tmp_path / "es.srt", [(0.2, 0.6, "Hola")])
    out = tmp_path / "out.mkv"
    assert (
        dub(
            face_source,
            "-a",
            speech,
            "-o",
            out,
            "--language",
            "spa",
            "--subtitles",
            new,
            "--keep-original-audio",
            "--json",
        )
        == 0
    )
    result = json.loads(capfd.readouterr().out)
    assert result["tracks"] == [
        {"type": "audio", "language": "spa", "from": "audio"},
        {"type": "audio", "language": "eng", "from": "video"},
        {"type": "audio", "language": "fra", "from": "video"},
        {"type": "subtitle", "language": "eng", "from": "video"},
        {"type": "subtitle", "language": "spa", "from": "subtitles"},
    ]
    assert result["settings"]["language"] == "spa" and result["settings"]["subtitles"] == str(new)
    # The new speech is the default track and a dub; of the source's, English was the default and is the original.
    assert streams_of(out) == [
        ("audio", "pcm_s16le", "spa", int(D.default | D.dub)),
        ("audio", "aac", "eng", int(D.original)),
        ("audio", "aac", "fra", int(D.dub)),
        ("subtitle", "subrip", "eng", int(D.forced)),
        ("subtitle", "subrip", "spa", 0),
    ]
    assert cues_of(out, 4) == [(0.1, 0.5, "Hello")] and cues_of(out, 5) == [(0.2, 0.6, "Hola")]
    assert attachments_of(out) == [("Subtitle Font.ttf", "font/ttf", FONT)]  # the subtitles' font
    # The source's sound as it was from the picture's first frame to the output's end: the Matroska remux put
    # each AAC track's first packet (the encoder's priming, 64 ms) before the picture, so it is left out.
    assert [sound_lead(face_source, stream) for stream in (1, 2)] == [-0.064, -0.064]
    for k in range(2):
        kept, given = (audio_packets(path, k + first) for path, first in ((out, 1), (face_source, 0)))
        assert kept == given[1 : 1 + len(kept)] and len(kept) >= len(given) - 2
    with av.open(str(out)) as f:
        assert f.metadata["title"] == "Talk" and [c["metadata"]["title"] for c in f.chapters()] == ["Start", "End"]
    assert run(["inspect", str(out), "--json"]) == 0
    seen = json.loads(capfd.readouterr().out)
    assert (seen["title"], seen["audio_languages"]) == ("Talk", ["spa", "eng", "fra"])
    assert [(s["codec"], s["language"]) for s in seen["subtitles"]] == [("subrip", "eng"), ("subrip", "spa")]
    assert run(["inspect", str(face_source)]) == 0
    shown = " ".join(re.sub("[│┌┐└┘├┤┬┴┼─]", " ", capfd.readouterr().err).split())  # the table's words
    assert "eng (subrip)" in shown and "2: Start 0.00 s" in shown and "1 more: fra" in shown
    assert [c["title"] for c in seen["chapters"]] == ["Start", "End"]

    # MP4 takes the subtitles as mov_text; without the source's, only the new speech's track is added.
    mp4 = tmp_path / "out.mp4"
    assert dub(face_source, "-a", speech, "-o", mp4, "--no-source-subtitles", "--subtitles", new) == 0
    assert "; tracks: audio und, subtitle und" in capfd.readouterr().err  # the summary line
    assert attachments_of(mp4) == []  # MP4 holds no attached files
    assert [s[:3] for s in streams_of(mp4)] == [("audio", "aac", None), ("subtitle", "mov_text", None)]
    assert cues_of(mp4, 2) == [(0.2, 0.6, "Hola")]


def test_a_sources_sound_that_starts_after_its_picture_keeps_its_place(tmp_path, tiny_root, monkeypatch):
    """A source whose sound a player presents 0.2 s after the first frame: kept (copied) it starts 0.2 s into the
    output, and spliced before a dub started 0.4 s in, its first 0.2 s is silence."""
    from tests.media_factory import with_sound_moved

    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    clip = make_face_video(tmp_path / "face.mp4", frames=25)
    tone = make_audio(tmp_path / "tone.wav", seconds=1.0)
    source = with_sound_moved(clip, tone, tmp_path / "late.mkv", 0.2)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.4)
    kept = tmp_path / "kept.mkv"
    assert dub(source, "-a", speech, "-o", kept, "--keep-original-audio") == 0
    with av.open(str(kept)) as f:
        original = f.streams.audio[1]
        first = next(p for p in f.demux(original) if p.size)
        assert float(first.pts * original.time_base) == pytest.approx(0.2, abs=1e-3)
    later = tmp_path / "later.mkv"
    assert dub(source, "-a", speech, "-o", later, "--start", "0.4") == 0
    with av.open(str(later)) as f:
        rate = f.streams.audio[0].sample_rate
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in f.decode(audio=0)])
    before, after = samples[: round(0.19 * rate)], samples[round(0.21 * rate) : round(0.38 * rate)]
    assert np.abs(before).max() < 1e-3 and np.sqrt(np.mean(after.astype(np.float64) ** 2)) > 0.05


def test_the_new_tracks_language_is_the_audio_files_own_unless_given(tmp_path, tiny_root, face_source, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    out = tmp_path / "out.mkv"
    assert dub(face_source, "-a", face_source, "-o", out) == 0  # its own English sound, as a re-dub
    assert streams_of(out)[0][:3] == ("audio", "aac", "eng")
    assert dub(face_source, "-a", face_source, "-o", out, "--overwrite", "--language", "fra") == 0
    assert streams_of(out)[0][:3] == ("audio", "aac", "fra")


def test_a_bad_language_or_subtitle_file_is_one_line_and_exit_2(tmp_path, tiny_root, face_source, monkeypatch, capsys):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    speech = make_audio(tmp_path / "speech.wav", seconds=0.4)
    out = tmp_path / "out.mp4"
    assert dub(face_source, "-a", speech, "-o", out, "--language", "es") == 2
    err = capsys.readouterr().err.strip()
    assert "language 'es': give a three-letter ISO 639-2 code" in err and len(err.splitlines()) == 1
    assert dub(face_source, "-a", speech, "-o", out, "--subtitles", speech) == 2
    err = capsys.readouterr().err.strip()
    assert "speech.wav: no subtitle stream" in err and len(err.splitlines()) == 1
    assert not out.exists()


# -- batch -----------------------------------------------------------------------------------------------------------
def test_batch_rows_and_folders_name_subtitles_and_languages(tmp_path):
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("video,audio,subtitles,language\nv.mp4,es.wav,es.srt,SPA\nv.mp4,fr.wav,,\n")
    first, second = items_from_manifest(manifest, None)
    assert (first.subtitles, first.language) == (tmp_path / "es.srt", "spa")
    assert (second.subtitles, second.language) == (None, None)
    manifest.write_text("video,audio,language\nv.mp4,es.wav,es\n")
    with pytest.raises(InputError, match="jobs.csv: row 1: language 'es'"):
        items_from_manifest(manifest, None)

    videos, audio, texts = (tmp_path / d for d in ("videos", "audio", "texts"))
    for d in (videos, audio, texts):
        d.mkdir()
    for stem in ("a", "b", "c", "d"):
        make_video(videos / f"{stem}.mp4", frames=2)
        make_audio(audio / f"{stem}.wav", seconds=0.1)
    for name in ("a.srt", "c.srt", "x/c.srt", "x/d.srt", "y/d.vtt"):
        (texts / name).parent.mkdir(exist_ok=True)
        make_subtitles(texts / name, CUES)
    a, b, c, d = items_from_folders(videos, audio, None, subtitles=texts)
    assert a.subtitles == texts / "a.srt" and a.audio is not None
    assert b.subtitles is None and b.audio is not None  # none for it: dubbed without
    assert c.subtitles == texts / "c.srt"  # its own relative stem before the same stem elsewhere
    assert d.audio is None and "2 subtitle files named d.*" in d.problem  # which one is meant


def test_a_batch_dubs_one_video_into_languages_each_with_its_subtitles(
    tmp_path, tiny_root, face_source, monkeypatch, capsys
):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))
    make_audio(tmp_path / "es.wav", seconds=0.4)
    make_audio(tmp_path / "de.wav", seconds=0.4, freqs=(300.0,))
    make_subtitles(tmp_path / "es.srt", [(0.1, 0.3, "Hola")])
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        f"video,audio,output,subtitles,language\n{face_source},es.wav,es.mkv,es.srt,spa\n{face_source},de.wav,de.mkv,,\n"
    )
    args = ["--weights", TINY_BUNDLE, "--no-source-subtitles", "--language", "deu", "--json"]
    assert run(["batch", str(manifest), "-o", str(tmp_path / "out"), *args]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()[:2]]
    assert (lines[0]["language"], lines[0]["subtitles"]) == ("spa", str(tmp_path / "es.srt"))
    assert [s[:3] for s in streams_of(tmp_path / "out" / "es.mkv")] == [
        ("audio", "pcm_s16le", "spa"),
        ("subtitle", "subrip", "spa"),
    ]
    assert [s[:3] for s in streams_of(tmp_path / "out" / "de.mkv")] == [
        ("audio", "pcm_s16le", "deu")
    ]  # the batch's own
