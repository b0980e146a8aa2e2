"""``dub VIDEO --audio AUDIO``, ``dub batch``, ``dub bench`` and the Python API, end to end with the tiny weights
bundle (random models, real face tracking, real encoding): lengths, streams, untouched pixels, bad inputs."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dubber import DubbingPipeline
from dubber.cli.app import run
from dubber.media import VideoReader, probe_media
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.probe import ColourTags
from dubber.media.transcode import reencode
from dubber.media.yuv_image import YuvImage
from dubber.pipeline.dub_pass import render_workers
from dubber.pipeline.timeline import Timeline
from tests.dub_checks import frames_of, no_partials, outside_mask
from tests.media_factory import make_audio, make_face_video, make_video, psnr
from tests.tiny_bundle import TINY_BLEND, TINY_BUNDLE, TINY_GUARD, make_tiny_weights

LOSSLESS = ["--crf", "0", "--preset", "ultrafast"]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    root = make_tiny_weights(tmp_path_factory.mktemp("weights"))
    make_tiny_weights(root, "tiny-speech", speech=True)  # a completer that reads speech-encoder features
    make_tiny_weights(root, "tiny-mel-speech", speech=True, keep_mel=True)  # ... and the mel too
    make_tiny_weights(root, "tiny-hearing", hearing=True)  # a completer whose lips and jaw follow the audio
    return make_tiny_weights(root, "tiny-ensemble", ensemble=True)  # a mel and a speech completer, as shipped


@pytest.fixture(autouse=True)
def _tiny_weights(tiny_root, monkeypatch):
    monkeypatch.setenv("DUB_WEIGHTS", str(tiny_root))


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    """20 frames: a face, then 4 frames without one (12..15), then the face again."""
    return make_face_video(tmp_path_factory.mktemp("media") / "face.mp4", frames=20, no_face=range(12, 16))


def dub(*args: str) -> int:
    return run(["video", *map(str, args), "--weights", TINY_BUNDLE])


# -- the main command -------------------------------------------------------------------------------------------------
def test_dub_writes_the_audio_length_with_untouched_surroundings(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.8)
    out = tmp_path / "out.mp4"
    assert dub(face_clip, "--audio", speech, "-o", out, "--json", "--steps", "2") == 0
    result = json.loads(capsys.readouterr().out)
    info, source = probe_media(out), probe_media(face_clip)
    assert result["frames"] == 20 == info.video.frame_count and result["source_frames"] == 20
    assert info.video.fps == Fraction(25) and info.video.time_base == source.video.time_base
    assert info.audio is not None and abs(info.audio.duration - 0.8) < 0.03
    assert result["face_frames"] == 16 and result["timings"]["render"] > 0
    assert 0 < result["network_frames"] <= 16
    plain = tmp_path / "plain.mp4"
    reencode(face_clip, plain, options=VideoEncodeOptions())
    dubbed, reference = frames_of(out), frames_of(plain)
    masks = outside_mask(face_clip, 192, dilate=16)  # one H.264 macroblock: the encoder spreads changes that far
    changed_faces = 0
    for i, keep in enumerate(masks):
        if keep is None:
            assert psnr(dubbed[i], reference[i]) > 40, f"face-less frame {i} changed"
            continue
        assert psnr(dubbed[i][keep], reference[i][keep]) > 40, f"frame {i} changed outside the face mask"
        changed_faces += psnr(dubbed[i][~keep], reference[i][~keep]) < 40
    assert changed_faces >= 12  # the mouths really were redrawn


def test_a_speech_input_bundle_dubs_with_its_speech_encoder(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.8)
    outs = {}
    for name in (TINY_BUNDLE, "tiny-speech", "tiny-mel-speech", "tiny-ensemble"):
        outs[name] = tmp_path / f"{name}.mp4"
        args = ["video", face_clip, "--audio", speech, "-o", outs[name], "--weights", name, "--steps", "2", "--json"]
        assert run(list(map(str, args))) == 0
        assert json.loads(capsys.readouterr().out)["frames"] == 20 == probe_media(outs[name]).video.frame_count
    for name, kind in (("tiny-speech", "speech"), ("tiny-mel-speech", "mel+speech"), ("tiny-ensemble", "ensemble")):
        pipe = DubbingPipeline.from_pretrained(name, device="cpu")
        assert pipe.landmarks.config.audio_input == kind and pipe.speech_encoder.config.source == "tiny-test"
    # other landmarks, so other mouths: the speech bundle's completer really drove the render
    assert (
        hashlib.sha256(outs["tiny-speech"].read_bytes()).digest()
        != hashlib.sha256(outs[TINY_BUNDLE].read_bytes()).digest()
    )


def test_a_seeded_dub_reproduces_byte_for_byte(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.6)
    digests, settings = {}, {}
    runs = (
        ("a", []),
        ("b", []),
        ("spread", ["--references", "spread", "--seed", "3"]),
        ("network", ["--no-reference-blend"]),
    )
    for name, extra in runs:
        out = tmp_path / f"{name}.mp4"
        assert dub(face_clip, "--audio", speech, "-o", out, "--steps", "2", "--json", *extra) == 0
        digests[name] = hashlib.sha256(out.read_bytes()).hexdigest()
        settings[name] = json.loads(capsys.readouterr().out)["settings"]
    assert digests["a"] == digests["b"] != digests["spread"]
    assert digests["network"] != digests["a"]
    assert settings["a"] == {
        "weights": "tiny",
        "runtime": "torch",
        "steps": 2,
        "seed": 0,
        "speech": None,  # the mouth follows the audio itself (no --speech stem)
        "speech_centre": False,  # a mono audio: no surround centre channel
        "speech_gain_db": 0.0,  # at a level the models heard in training
        "language": None,  # neither given nor tagged in the audio file
        "subtitles": None,  # no subtitle file of the new speech
        "source_subtitles": True,  # the source's subtitle tracks carried (it has none)
        "references": "nearest",
        "batch_size": 8,  # auto, on the CPU
        "articulation_gain": 1.0,  # 20 frames: too few to read the speaker's range
        "guidance": 1.0,
        "scheduler": "dpm++",
        "hint_warp": True,
        "face_backend": "mediapipe",
        "source_detail": True,
        "reference_blend": TINY_BLEND.to_dict(),
        "mouth_guard": TINY_GUARD.to_dict(),
        "reference_key_side": None,  # the tiny weights attend to every reference token
        "face": 0,  # the largest face
        "tracking_segments": 1,  # one tracker below 8 cores
        "people": 1,  # one face, facing the camera
        "person": None,  # every person dubbed
        "speaking": None,  # no reading of who speaks (--only-speaking)
        "kept_shots": None,  # ... nor of the shots it keeps
        # Two where the CLI left torch one thread on a CPU of two cores or more (the free cores less one).
        "render_workers": render_workers(torch.device("cpu"), "torch"),
        "paste": "opencv",
    }
    assert settings["network"]["reference_blend"] is None and settings["network"]["mouth_guard"] is None
    assert settings["spread"]["references"] == "spread" and settings["spread"]["seed"] == 3


def test_lossless_dub_keeps_faceless_frames_and_the_surroundings_exactly(tmp_path, face_clip):
    speech = make_audio(tmp_path / "speech.wav", seconds=1.0)  # 25 frames: the 20-frame video is extended
    out, plain = tmp_path / "out.mp4", tmp_path / "plain.mp4"
    assert dub(face_clip, "--audio", speech, "-o", out, "--steps", "1", *LOSSLESS) == 0
    reencode(face_clip, plain, options=VideoEncodeOptions(crf=0, preset="ultrafast"))
    dubbed, reference = frames_of(out), frames_of(plain)
    assert len(dubbed) == 25 and len(reference) == 20
    for i, keep in enumerate(outside_mask(face_clip, 192, dilate=2)):
        if keep is None:
            np.testing.assert_array_equal(dubbed[i], reference[i])
        else:
            # yuv420p chroma is shared by 2x2 blocks: one pixel more may differ along the polygon's edge
            keep = cv2.erode(keep.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            np.testing.assert_array_equal(dubbed[i][keep], reference[i][keep])
    # Ping-pong: output frames 20..24 show source frames 18, 17, 16, 15, 14 (15 and 14 have no face).
    assert Timeline(20, 25).source_indices(20, 25) == [18, 17, 16, 15, 14]
    np.testing.assert_array_equal(dubbed[23], reference[15])
    np.testing.assert_array_equal(dubbed[24], reference[14])


def test_a_bt709_dub_keeps_its_colour_tags_and_its_decoded_surroundings(tmp_path):
    clip = make_face_video(tmp_path / "bt709.mp4", frames=8, no_face=range(4, 6), colour=(1, 1))
    out = tmp_path / "out.mp4"
    assert dub(clip, "--audio", make_audio(tmp_path / "s.wav", seconds=0.32), "-o", out, *LOSSLESS) == 0
    assert probe_media(out).video.colour == probe_media(clip).video.colour == ColourTags(1, 1, 1, 1)
    source = [f.image for f in VideoReader(clip).frames("planes")]
    dubbed = [f.image for f in VideoReader(out).frames("planes")]
    assert len(dubbed) == 8 and all(isinstance(d, YuvImage) and d.colorspace == 1 for d in dubbed)
    for i in (4, 5):  # no face: the decoded planes themselves
        np.testing.assert_array_equal(dubbed[i].data, source[i].data)
    y, y_src = dubbed[0].planes()[0], source[0].planes()[0]
    changed = np.argwhere(y != y_src)
    assert 0 < len(changed) < y.size / 4  # the lower face alone
    assert changed[:, 0].min() > 192 * 0.35  # nothing above the nose


def test_an_anamorphic_dub_is_shown_as_wide_as_its_source(tmp_path):
    """A 16:9 PAL frame stored 320 x 256 with pixels 64/45 as wide as they are high: without the pixel aspect the
    output was shown at 5:4."""
    clip = make_face_video(tmp_path / "pal.mkv", frames=6, size=256, sample_aspect=Fraction(64, 45))
    assert probe_media(clip).video.sample_aspect == Fraction(64, 45)
    for suffix in ("mp4", "mkv"):
        out = tmp_path / f"out.{suffix}"
        assert dub(clip, "--audio", make_audio(tmp_path / "s.wav", seconds=0.24), "-o", out, *LOSSLESS) == 0
        assert probe_media(out).video.sample_aspect == Fraction(64, 45)


def test_a_webm_dub_is_vp9_and_opus_with_untouched_surroundings(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.8, rate=44100)
    out = tmp_path / "out.webm"
    assert dub(face_clip, "--audio", speech, "-o", out, "--json", "--crf", "4") == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 20
    info = probe_media(out)
    assert (info.video.codec, info.video.frame_count, info.video.fps) == ("vp9", 20, Fraction(25))
    assert (info.audio.codec, info.audio.sample_rate) == ("opus", 48000) and abs(info.audio.duration - 0.8) < 0.03
    mp4 = tmp_path / "out.mp4"
    assert dub(face_clip, "--audio", speech, "-o", mp4, "--crf", "4") == 0
    webm, h264 = frames_of(out), frames_of(mp4)
    for i, keep in enumerate(outside_mask(face_clip, 192, dilate=16)):  # the same dub, another codec
        assert psnr(webm[i], h264[i]) > 38 if keep is None else psnr(webm[i][keep], h264[i][keep]) > 38
    assert dub(face_clip, "--audio", speech, "-o", tmp_path / "again.webm", "--crf", "4") == 0
    assert (tmp_path / "again.webm").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("fit", ["pingpong", "loop", "freeze"])
def test_fit_modes_show_source_frames_in_timeline_order(tmp_path, fit):
    video = make_video(tmp_path / "pattern.mp4", frames=6)  # no face anywhere: frames pass through
    speech = make_audio(tmp_path / "s.wav", seconds=0.6)
    out, plain = tmp_path / "out.mp4", tmp_path / "plain.mp4"
    assert dub(video, "--audio", speech, "-o", out, "--fit", fit, *LOSSLESS) == 0
    reencode(video, plain, options=VideoEncodeOptions(crf=0, preset="ultrafast"))
    dubbed, reference = frames_of(out), frames_of(plain)
    order = Timeline(6, 15, fit).source_indices()
    assert len(dubbed) == 15
    for i, s in enumerate(order):
        np.testing.assert_array_equal(dubbed[i], reference[s], err_msg=f"{fit}: frame {i} should be source {s}")


def test_a_longer_video_is_cut_or_keeps_its_rest(tmp_path):
    video = make_video(tmp_path / "long.mp4", frames=20, audio_rate=16000)
    speech = make_audio(tmp_path / "s.wav", seconds=0.4)
    cut, kept = tmp_path / "cut.mp4", tmp_path / "kept.mp4"
    assert dub(video, "--audio", speech, "-o", cut) == 0
    assert dub(video, "--audio", speech, "-o", kept, "--keep-rest", "--keep-original-audio") == 0
    cut_info, kept_info = probe_media(cut), probe_media(kept)
    assert cut_info.video.frame_count == 10 and abs(cut_info.audio.duration - 0.4) < 0.03
    assert kept_info.video.frame_count == 20 and abs(kept_info.audio.duration - 0.8) < 0.03
    import av

    with av.open(str(kept)) as c:
        assert len(c.streams.audio) == 2  # the dub (then the original) and the original as a second track


def _main_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_a_dub_can_start_into_the_video_and_keep_what_follows(tmp_path, capfd):
    """``--start 0.2 --keep-rest``: the source's own frames and sound, the dub from 0.2 s for the speech's 0.4 s,
    then the source's own again; the frames around the dub are the source's exactly."""
    from dubber.media import decode_audio

    video = make_face_video(tmp_path / "v.mp4", frames=20, audio_rate=16000)  # a 440 Hz tone
    speech = make_audio(tmp_path / "s.wav", seconds=0.4, freqs=(1000.0,))
    out, plain = tmp_path / "out.mp4", tmp_path / "plain.mp4"
    assert dub(video, "--audio", speech, "-o", out, "--start", "0:00.2", "--keep-rest", "--json", *LOSSLESS) == 0
    result = json.loads(capfd.readouterr().out)
    assert (result["frames"], result["dubbed_frames"], result["face_frames"], result["dub_start"]) == (20, 10, 10, 0.2)
    reencode(video, plain, options=VideoEncodeOptions(crf=0, preset="ultrafast"))
    dubbed, reference = frames_of(out), frames_of(plain)
    assert len(dubbed) == 20
    for i in [*range(5), *range(15, 20)]:
        np.testing.assert_array_equal(dubbed[i], reference[i], err_msg=f"frame {i} is outside the dub")
    assert sum(psnr(dubbed[i], reference[i]) < 50 for i in range(5, 15)) >= 8  # the dub's mouths were redrawn
    sound = decode_audio(out)
    rate, mono = sound.sample_rate, sound.mono
    assert abs(sound.duration - 0.8) < 0.03
    for (a, b), hz in (((0.02, 0.18), 440), ((0.24, 0.56), 1000), ((0.62, 0.78), 440)):
        assert abs(_main_frequency(mono[int(a * rate) : int(b * rate)], rate) - hz) < 30, (a, b)
    # the same dub without the rest ends with the speech; a start past the end is refused before any work
    assert dub(video, "--audio", speech, "-o", tmp_path / "cut.mp4", "--start", "0.2") == 0
    assert probe_media(tmp_path / "cut.mp4").video.frame_count == 15
    assert "15 frames (0.60 s at 25 fps; the new speech from 0.20 to 0.60 s)" in capfd.readouterr().err
    assert dub(video, "--audio", speech, "-o", tmp_path / "late.mp4", "--start", "0.8") == 2
    assert "v.mp4: --start 0.8 s is at or past the video's end (0.80 s)" in capfd.readouterr().err
    assert dub(video, "--audio", speech, "-o", tmp_path / "late.mp4", "--start", "1:75") == 2
    assert "--start '1:75': give seconds" in capfd.readouterr().err
    assert not (tmp_path / "late.mp4").exists() and no_partials(tmp_path)


def test_the_mouth_follows_a_speech_stem_while_the_output_carries_the_mix(tmp_path, face_clip, capfd):
    """``--speech STEM``: the frames a dub with the stem as its audio draws, the sound of ``--audio`` (the mix); a
    stem that ends early is followed by silence (the frames of a dub with the silence written out), with a warning;
    a stem without sound is refused before any work."""
    from dubber.media import decode_audio
    from tests.media_factory import tone

    stem = make_audio(tmp_path / "stem.wav", seconds=0.8, freqs=(300.0,))
    mix = make_audio(tmp_path / "mix.wav", seconds=0.8, freqs=(2000.0,))
    out, by_stem, by_mix = tmp_path / "out.mp4", tmp_path / "by_stem.mp4", tmp_path / "by_mix.mp4"

    def dub(*args) -> int:
        return run(["video", *map(str, args), "--weights", "tiny-hearing"])

    assert dub(face_clip, "--audio", mix, "--speech", stem, "-o", out, "--json", *LOSSLESS) == 0
    result = json.loads(capfd.readouterr().out)
    assert result["settings"]["speech"] == str(stem) and result["frames"] == 20
    assert dub(face_clip, "--audio", stem, "-o", by_stem, *LOSSLESS) == 0
    assert dub(face_clip, "--audio", mix, "-o", by_mix, *LOSSLESS) == 0
    got, want, other = frames_of(out), frames_of(by_stem), frames_of(by_mix)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {i} is not the stem's")
    assert any(not np.array_equal(a, b) for a, b in zip(got, other, strict=True))  # the mix: other mouths
    sound = decode_audio(out)
    assert abs(sound.duration - 0.8) < 0.03 and abs(_main_frequency(sound.mono, sound.sample_rate) - 2000) < 30

    short = make_audio(tmp_path / "short.wav", seconds=0.3, freqs=(300.0,))
    long_mix = make_audio(tmp_path / "long_mix.wav", seconds=1.6, freqs=(2000.0,))
    rest = np.zeros((1, round(1.3 * 16000)), np.float32)
    written = make_audio(tmp_path / "written.wav", samples=np.concatenate([tone(0.3, 16000, 1, (300.0,)), rest], 1))
    capfd.readouterr()
    assert dub(face_clip, "--audio", long_mix, "--speech", short, "-o", out, "--overwrite", *LOSSLESS) == 0
    assert "short.wav ends 1.30 s before" in capfd.readouterr().err
    assert dub(face_clip, "--audio", written, "-o", by_stem, "--overwrite", *LOSSLESS) == 0
    got, want = frames_of(out), frames_of(by_stem)
    assert len(got) == 40 == len(want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {i} is not the stem's then silence's")

    silent = make_video(tmp_path / "silent.mp4", frames=3)
    assert dub(face_clip, "--audio", mix, "--speech", silent, "-o", tmp_path / "no.mp4") == 2
    assert "silent.mp4: no audio stream" in capfd.readouterr().err
    assert not (tmp_path / "no.mp4").exists()


def test_a_surround_mix_moves_the_mouth_with_its_centre_channel(tmp_path, face_clip, capsys):
    """A 5.1 mix whose centre holds the voice and whose other channels hold music: the frames of a dub with the
    voice alone, and the output's sound the 5.1 mix."""
    t = np.arange(12800) / 16000
    voice = (0.3 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    music = (0.3 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    silent = np.zeros_like(voice)
    mix = make_audio(tmp_path / "mix.wav", samples=np.stack([music, music, voice, silent, music, music]), layout="5.1")
    alone = make_audio(tmp_path / "voice.wav", samples=voice[None])
    out, by_voice = tmp_path / "out.mp4", tmp_path / "by_voice.mp4"
    settings = {}
    for audio, dest in ((mix, out), (alone, by_voice)):
        args = ["video", str(face_clip), "-a", str(audio), "-o", str(dest), *LOSSLESS, "--json"]
        assert run([*args, "--weights", "tiny-hearing"]) == 0
        settings[dest.stem] = json.loads(capsys.readouterr().out)["settings"]
    assert settings["out"]["speech_centre"] and not settings["by_voice"]["speech_centre"]
    quiet = make_audio(tmp_path / "quiet.wav", samples=voice[None] * 10 ** (-40 / 20))  # far below any train speaker
    assert (
        run(["video", str(face_clip), "-a", str(quiet), "-o", str(tmp_path / "q.mp4"), "--json", "--weights", "tiny"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["settings"]["speech_gain_db"] == pytest.approx(
        39.5, abs=0.3
    )  # to -14 dB
    for i, (a, b) in enumerate(zip(frames_of(out), frames_of(by_voice), strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {i} does not follow the centre channel")
    assert probe_media(out).audio.channels == 6


def _two_faces(i: int, w: int, h: int) -> np.ndarray:
    """The portrait at full height on the left, a smaller one on the right (--face 0 and --face 1)."""
    from tests.media_factory import face_frame

    small = np.zeros((h, w - h, 3), np.uint8)
    small[h - (w - h) :] = face_frame(i + 7, w - h, w - h)
    return np.hstack([face_frame(i, h, h), small])


def test_face_n_redraws_that_face_alone(tmp_path):
    """Two faces in one shot: ``--face 1`` redraws the smaller one and leaves the larger's pixels exactly as they
    were, ``--face 0`` the other way round; ``dub inspect`` says two faces can be picked."""
    from dubber.inspection import inspect_video

    video = make_video(tmp_path / "two.mp4", frames=10, width=352, height=192, frame_fn=_two_faces)
    assert inspect_video(video).most_faces == 2
    speech = make_audio(tmp_path / "s.wav", seconds=0.4)
    plain = tmp_path / "plain.mp4"
    reencode(video, plain, options=VideoEncodeOptions(crf=0, preset="ultrafast"))
    reference = frames_of(plain)
    for face, kept, redrawn in ((0, slice(208, 352), slice(0, 192)), (1, slice(0, 176), slice(192, 352))):
        out = tmp_path / f"face{face}.mp4"
        assert dub(video, "--audio", speech, "-o", out, "--face", str(face), *LOSSLESS) == 0
        dubbed = frames_of(out)
        for i, (a, b) in enumerate(zip(dubbed, reference, strict=True)):
            np.testing.assert_array_equal(a[:, kept], b[:, kept], err_msg=f"--face {face}: frame {i}'s other face")
        assert sum(psnr(a[:, redrawn], b[:, redrawn]) < 50 for a, b in zip(dubbed, reference, strict=True)) >= 8
    right = tmp_path / "right.mp4"  # the smaller face is the one on the right
    assert dub(video, "--audio", speech, "-o", right, "--face", "right", *LOSSLESS) == 0
    assert right.read_bytes() == (tmp_path / "face1.mp4").read_bytes()


def test_a_still_image_becomes_a_talking_video_beside_it(tmp_path):
    from tests.media_factory import face_frame

    image = tmp_path / "portrait.png"
    cv2.imwrite(str(image), face_frame(0, 160, 160)[:, :, ::-1])
    speech = make_audio(tmp_path / "s.wav", seconds=0.72)
    assert dub(image, "--audio", speech, "--fps", "25", "--steps", "1") == 0
    info = probe_media(tmp_path / "portrait.dubbed.mp4")
    assert info.video.fps == 25 and info.video.frame_count == 18 and info.audio is not None


def test_a_raw_h264_stream_dubs_at_its_nominal_rate(tmp_path, capfd):
    from tests.media_factory import face_frame

    video = make_video(tmp_path / "camera.h264", fps=25, frames=12, width=160, height=160, frame_fn=face_frame)
    speech = make_audio(tmp_path / "s.wav", seconds=0.72)
    assert dub(video, "--audio", speech, "-o", tmp_path / "out.mp4") == 0
    assert "camera.h264: its frames carry no usable timestamps" in capfd.readouterr().err
    info = probe_media(tmp_path / "out.mp4")
    assert info.video.fps == 25 and info.video.frame_count == 18 and info.audio is not None


def test_refuses_to_overwrite_and_leaves_no_partial_file(tmp_path, capsys):
    video = make_video(tmp_path / "v.mp4", frames=5)
    speech = make_audio(tmp_path / "s.wav", seconds=0.2)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    assert dub(video, "--audio", speech, "-o", out) == 2
    assert out.read_bytes() == b"keep me" and "already exists" in capsys.readouterr().err
    assert dub(video, "--audio", speech, "-o", out, "--overwrite") == 0
    assert probe_media(out).video.frame_count == 5 and no_partials(tmp_path)


def _bad_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    video = make_video(tmp / "v.mp4", frames=5)
    silent_video = make_video(tmp / "silent.mp4", frames=5)
    speech = make_audio(tmp / "s.wav", seconds=0.2)
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video" * 100)
    out = str(tmp / "o.mp4")
    return {
        "missing video": (["nowhere.mp4", "--audio", speech, "-o", out], "no such file"),
        "missing audio": ([video, "--audio", tmp / "none.wav", "-o", out], "no such file"),
        "audio without sound": ([video, "--audio", silent_video, "-o", out], "no audio stream"),
        "corrupt video": ([corrupt, "--audio", speech, "-o", out], "corrupt"),
        "audio is a folder": ([video, "--audio", tmp, "-o", out], "is a folder"),
        "bad output type": ([video, "--audio", speech, "-o", tmp / "o.avi"], "unsupported output type"),
        "output folder missing": ([video, "--audio", speech, "-o", tmp / "no" / "o.mp4"], "does not exist"),
        "bad fit": ([video, "--audio", speech, "-o", out, "--fit", "bounce"], "fit='bounce'"),
        "bad device": ([video, "--audio", speech, "-o", out, "--device", "tpu"], "--device"),
        "bad dtype": ([video, "--audio", speech, "-o", out, "--dtype", "int8"], "--dtype"),
        "no --audio": ([video, "-o", out], "Missing option"),
        "bad steps": ([video, "--audio", speech, "-o", out, "--steps", "0"], "--steps"),
        "bad batch size": ([video, "--audio", speech, "-o", out, "--batch-size", "many"], "--batch-size 'many'"),
        "bad references": ([video, "--audio", speech, "-o", out, "--references", "closest"], "references='closest'"),
    }


def test_every_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for name, (args, expected) in _bad_cases(tmp_path).items():
        assert dub(*args) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, f"{name}: {err!r}"
    assert run(["video", str(tmp_path / "v.mp4"), "--audio", str(tmp_path / "s.wav"), "--weights", "nothing"]) == 2
    assert "no weights named 'nothing'" in capsys.readouterr().err
    # The files are checked before the weights load: a bad one is named even where the weights would fail too.
    assert run(["video", str(tmp_path / "v.mp4"), "--audio", str(tmp_path / "silent.mp4"), "--weights", "nothing"]) == 2
    assert "silent.mp4: no audio stream" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists() and no_partials(tmp_path)


# -- batch ------------------------------------------------------------------------------------------------------------
def test_batch_goes_past_a_corrupt_item_and_exits_3(tmp_path, capsys):
    for name in ("a", "b"):
        make_video(tmp_path / f"{name}.mp4", frames=6)
        make_audio(tmp_path / f"{name}.wav", seconds=0.2)
    (tmp_path / "bad.mp4").write_bytes(b"garbage" * 50)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("video,audio\na.mp4,a.wav\nbad.mp4,a.wav\nb.mp4,b.wav\n")
    out = tmp_path / "out"
    assert run(["batch", str(manifest), "-o", str(out), "--json", "--weights", TINY_BUNDLE]) == 3
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x.get("status") for x in lines[:3]] == ["ok", "failed", "ok"]
    assert "bad.mp4" in lines[1]["error"] and lines[3] == {
        "summary": True,
        "items": 3,
        "ok": 2,
        "skipped": 0,
        "failed": 1,
    }
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"] and no_partials(tmp_path)
    assert probe_media(out / "b.mp4").video.frame_count == 5
    assert run(["batch", str(manifest), "-o", str(out), "--json", "--skip-existing", "--weights", TINY_BUNDLE]) == 3
    assert [json.loads(x)["status"] for x in capsys.readouterr().out.splitlines()[:3]] == [
        "skipped",
        "failed",
        "skipped",
    ]


def test_batch_folders_take_every_kind_of_video_a_dub_reads(tmp_path):
    from dubber.pipeline.batch import items_from_folders

    names = ["a.ts", "b.h264", "c.gif", "d.flv", "e.MPG", "f.m2ts", "g.webp"]
    for folder, files in (("videos", names + ["notes.txt"]), ("voices", [f"{n[0]}.wav" for n in names])):
        (tmp_path / folder).mkdir()
        for name in files:
            (tmp_path / folder / name).write_bytes(b"")
    items = items_from_folders(tmp_path / "videos", tmp_path / "voices", tmp_path / "out")
    assert [i.video.name for i in items] == names
    assert all(i.audio is not None and i.audio.stem == i.video.stem and not i.problem for i in items)


def test_batch_pairs_folders_by_stem_and_keeps_subfolders(tmp_path, capsys):
    (tmp_path / "videos" / "sub").mkdir(parents=True)
    (tmp_path / "voices" / "sub").mkdir(parents=True)
    make_video(tmp_path / "videos" / "sub" / "x.mp4", frames=5)
    make_video(tmp_path / "videos" / "y.mov", frames=5)
    make_audio(tmp_path / "voices" / "sub" / "x.wav", seconds=0.2)
    make_audio(tmp_path / "voices" / "y.mp3", seconds=0.2)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"video": "videos/y.mov", "audio": "voices/y.mp3", "output": "named.mkv"}\n')
    out = tmp_path / "out"
    args = ["batch", "--videos", str(tmp_path / "videos"), "--audio", str(tmp_path / "voices"), "-o", str(out)]
    assert run([*args, "--weights", TINY_BUNDLE]) == 0
    assert (out / "sub" / "x.mp4").is_file() and (out / "y.mp4").is_file()
    assert run(["batch", str(jobs), "-o", str(out), "--weights", TINY_BUNDLE]) == 0
    assert probe_media(out / "named.mkv").video.frame_count == 5
    assert run(["batch", str(tmp_path / "jobs.jsonl"), "--videos", str(tmp_path)]) == 2
    assert "either a manifest" in capsys.readouterr().err
    assert run([*args, "--format", "webm", "--weights", TINY_BUNDLE]) == 0  # outputs the batch names itself
    assert probe_media(out / "sub" / "x.webm").video.codec == "vp9" and (out / "y.webm").is_file()
    assert run([*args, "--format", "avi", "--weights", TINY_BUNDLE]) == 2
    assert "--format 'avi' is not one of m4v, mkv, mov, mp4, webm" in capsys.readouterr().err


def test_batch_folders_pair_speech_stems_by_stem_too(tmp_path, face_clip, capsys):
    """``--speech DIR`` beside ``--videos`` and ``--audio``: each video's stem is found as its audio is; an item
    without one fails (exit 3) naming what is missing; ``--speech`` with a manifest is refused."""
    for folder in ("videos", "mixes", "stems"):
        (tmp_path / folder).mkdir()
    for name in ("a", "b"):
        (tmp_path / "videos" / f"{name}.mp4").write_bytes(face_clip.read_bytes())
        make_audio(tmp_path / "mixes" / f"{name}.wav", seconds=0.4, freqs=(2000.0,))
    stem = make_audio(tmp_path / "stems" / "a.flac", seconds=0.4, freqs=(300.0,))
    out = tmp_path / "out"
    args = ["batch", "--videos", str(tmp_path / "videos"), "--audio", str(tmp_path / "mixes"), "-o", str(out)]
    assert run([*args, "--speech", str(tmp_path / "stems"), "--json", "--weights", "tiny-hearing", *LOSSLESS]) == 3
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["status"] == "ok" and lines[0]["speech"] == str(stem)
    assert lines[1]["status"] == "failed" and f"no speech named b.* under {tmp_path / 'stems'}" in lines[1]["error"]
    alone = tmp_path / "alone.mp4"
    mix = tmp_path / "mixes" / "a.wav"
    assert run(["video", str(face_clip), "-a", str(mix), "--speech", str(stem), "-o", str(alone), *LOSSLESS,
                "--weights", "tiny-hearing"]) == 0  # fmt: skip
    assert (out / "a.mp4").read_bytes() == alone.read_bytes()
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"video,audio\n{face_clip},{mix}\n")
    assert run(["batch", str(manifest), "--speech", str(tmp_path / "stems"), "--weights", "tiny-hearing"]) == 2
    assert "--speech DIR pairs stems with --videos DIR" in capsys.readouterr().err


def test_batch_tracks_a_video_once_for_the_audios_that_follow_it(tmp_path, face_clip, capsys, monkeypatch):
    """One video into several languages: the items in a row that dub it share one face track, and each output is
    the bytes a dub of its own gives (ping-pong extension included: the reused track's frames are spooled anew)."""
    short, long_ = make_audio(tmp_path / "en.wav", seconds=0.4), make_audio(tmp_path / "fr.wav", seconds=1.2)
    other = make_face_video(tmp_path / "other.mp4", frames=8)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        f"video,audio,output\n{face_clip},{short},a.mp4\n{face_clip},{long_},b.mp4\n{other},{short},c.mp4\n"
    )
    tracked = []
    analyse = DubbingPipeline.analyse
    monkeypatch.setattr(DubbingPipeline, "analyse", lambda self, v, **k: tracked.append(v) or analyse(self, v, **k))
    out = tmp_path / "out"
    assert run(["batch", str(manifest), "-o", str(out), "--json", "--weights", TINY_BUNDLE, "--crf", "0"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert tracked == [face_clip]  # the third item, a video of its own, is tracked inside its dub as before
    assert [x["result"].get("track_reused") for x in lines[:3]] == [False, True, None]
    first, second = lines[0]["result"]["timings"], lines[1]["result"]["timings"]
    assert first["track"] > 0 and "track" not in second  # the tracking counts where it was done
    for name, audio in (("a", short), ("b", long_)):
        alone = tmp_path / f"{name}-alone.mp4"
        assert dub(face_clip, "--audio", audio, "-o", alone, "--crf", "0") == 0
        assert (out / f"{name}.mp4").read_bytes() == alone.read_bytes(), name


def test_a_batch_row_can_start_its_dub_into_the_video(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "s.wav", seconds=0.4)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"video,audio,output,start\n{face_clip},{speech},a.mp4,0.2\n{face_clip},{speech},b.mp4,\n")
    out = tmp_path / "out"
    assert run(["batch", str(manifest), "-o", str(out), "--json", "--weights", TINY_BUNDLE, "--crf", "0"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["start"] == 0.2 and lines[0]["result"]["dub_start"] == 0.2 and "start" not in lines[1]
    alone = tmp_path / "alone.mp4"
    assert dub(face_clip, "--audio", speech, "-o", alone, "--crf", "0", "--start", "0.2") == 0
    assert (out / "a.mp4").read_bytes() == alone.read_bytes()
    assert probe_media(out / "b.mp4").video.frame_count == 10
    manifest.write_text(f"video,audio,start\n{face_clip},{speech},soon\n")
    assert run(["batch", str(manifest), "-o", str(out), "--weights", TINY_BUNDLE]) == 2
    assert "jobs.csv: row 1: start 'soon' is not seconds or [HH:]MM:SS[.ms]" in capsys.readouterr().err


def test_a_batch_row_can_name_the_only_person_dubbed(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "s.wav", seconds=0.4)
    manifest, out = tmp_path / "jobs.csv", tmp_path / "out"
    manifest.write_text(f"video,audio,output,person\n{face_clip},{speech},a.mp4,0\n{face_clip},{speech},b.mp4,1\n")
    assert run(["batch", str(manifest), "-o", str(out), "--json", "--weights", TINY_BUNDLE, "--crf", "0"]) == 3
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["status"] == "ok" and lines[0]["person"] == 0 and lines[0]["result"]["settings"]["person"] == 0
    assert lines[1]["status"] == "failed" and "--person 1 needs 2 people told apart" in lines[1]["error"]
    assert not (out / "b.mp4").exists()
    alone = tmp_path / "alone.mp4"  # one person: person 0 is every face, as without the column
    assert dub(face_clip, "--audio", speech, "-o", alone, "--crf", "0") == 0
    assert (out / "a.mp4").read_bytes() == alone.read_bytes()
    manifest.write_text(f"video,audio,person\n{face_clip},{speech},first\n")
    assert run(["batch", str(manifest), "-o", str(out), "--weights", TINY_BUNDLE]) == 2
    assert "jobs.csv: row 1: person 'first' is not 0, 1, 2, ..." in capsys.readouterr().err


def test_a_batch_row_can_name_the_speech_stem_its_mouth_follows(tmp_path, face_clip, capsys):
    stem = make_audio(tmp_path / "stem.wav", seconds=0.4, freqs=(300.0,))
    mix = make_audio(tmp_path / "mix.wav", seconds=0.4, freqs=(2000.0,))
    manifest, out = tmp_path / "jobs.csv", tmp_path / "out"
    manifest.write_text(f"video,audio,output,speech\n{face_clip},mix.wav,a.mp4,stem.wav\n{face_clip},mix.wav,b.mp4,\n")
    args = ["--weights", "tiny-hearing", "--crf", "0"]
    assert run(["batch", str(manifest), "-o", str(out), "--json", *args]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["speech"] == str(stem) and lines[0]["result"]["settings"]["speech"] == str(stem)
    assert "speech" not in lines[1] and lines[1]["result"]["settings"]["speech"] is None
    alone = tmp_path / "alone.mp4"
    assert run(["video", str(face_clip), "--audio", str(mix), "--speech", str(stem), "-o", str(alone), *args]) == 0
    assert (out / "a.mp4").read_bytes() == alone.read_bytes() != (out / "b.mp4").read_bytes()


# -- Python API, chunking, bench ---------------------------------------------------------------------------------
def test_python_api_reports_progress_and_chunks_do_not_show(tmp_path, face_clip):
    from dubber import DubbingPipeline

    pipe = DubbingPipeline.from_pretrained(TINY_BUNDLE, device="cpu")
    speech = make_audio(tmp_path / "s.wav", seconds=0.8)
    seen: list[tuple[str, int, int]] = []
    a = pipe(
        face_clip,
        speech,
        tmp_path / "a.mp4",
        steps=2,
        batch_size=3,
        crf=0,
        preset="ultrafast",
        progress=lambda *x: seen.append(x),
    )
    b = pipe(face_clip, speech, tmp_path / "b.mp4", steps=2, batch_size=8, crf=0, preset="ultrafast")
    assert a.frames == b.frames == 20 and a.face_frames == b.face_frames == 16 and not a.still_image
    assert set(a.timings) >= {"audio", "decode", "track", "landmarks", "render", "composite", "encode", "total"}
    assert list(a.phases) == ["audio", "analyse", "plan", "dub"]  # one after another, filling the dub's time
    assert sum(p["seconds"] for p in a.phases.values()) == pytest.approx(a.timings["total"], abs=0.05)
    assert all(p["seconds"] > 0 and p["cores"] >= 0 for p in a.phases.values())
    assert ("analyse", 20, 20) in seen and seen[-1] == ("dub", 20, 20)
    for x, y in zip(frames_of(tmp_path / "a.mp4"), frames_of(tmp_path / "b.mp4"), strict=True):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 2  # batch size changes only float rounding
    assert 0 < a.network_frames == b.network_frames <= 16
    from dubber.render.reference_blend import ReferenceBlend

    blend, pipe.renderer.reference_blend = pipe.renderer.reference_blend, ReferenceBlend(10.0, 10.0)
    try:  # every hint within the blend's reach: the warped hints alone, no frame drawn by the network
        c = pipe(face_clip, speech, tmp_path / "c.mp4", steps=2, preset="ultrafast")
    finally:
        pipe.renderer.reference_blend = blend
    assert c.face_frames == 16 and c.network_frames == 0


def test_bench_reports_stages_memory_and_the_reencode_ratio(tmp_path, face_clip, capsys):
    speech = make_audio(tmp_path / "s.wav", seconds=0.4)
    assert (
        run(["bench", str(face_clip), "--audio", str(speech), "--steps", "1", "--json", "--weights", TINY_BUNDLE]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 10 and report["end_to_end_fps"] > 0 and report["plain_reencode_fps"] > 0
    assert report["slowdown_vs_reencode"] > 1 and report["peak_rss_mb"] > 50
    assert report["overlap"] > 0.5 and report["wall_seconds"] > 0
    assert report["cpu_ms_per_frame"] > report["reencode_cpu_ms_per_frame"] > 0 and report["cores_busy"] > 0.2
    assert {"render", "track", "encode"} <= set(report["stage_fps"])
    assert set(report["phases"]) == {"audio", "analyse", "plan", "dub"} and report["phases"]["dub"]["cores"] > 0.2
    assert report["settings"]["paste"] == "opencv" and report["settings"]["tracking_segments"] == 1
    # The tiny bundle's blend gives the network every frame whose hint is not its target's mouth exactly.
    assert report["face_frames"] == 10 and 0 < report["network_frames"] <= 10, report["network_frames"]
