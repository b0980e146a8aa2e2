"""Frames kept as decoded planes: RGB made only in a region equals the whole frame's there, a paste changes only the
pixels it draws on, and the writer and the spool keep the planes as they are."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from dubber.face.aligner import Similarity
from dubber.media import VideoReader, VideoWriter
from dubber.media.encode_options import VideoEncodeOptions
from dubber.media.probe import ColourTags, probe_media
from dubber.media.transcode import reencode
from dubber.media.yuv_image import YuvImage, even_box, rgb_to_yuv_matrix, yuv_to_rgb_matrix
from dubber.pipeline.compositor import CompositeOptions, Compositor
from dubber.pipeline.frame_regions import crop_face, paste_face
from dubber.pipeline.frame_source import FrameSpool
from dubber.pipeline.torch_compositor import TorchCompositor
from tests.media_factory import face_frame, make_video

LOSSLESS = VideoEncodeOptions(crf=0, preset="ultrafast")


def _decoded(rgb: np.ndarray, colorspace: int = 2, color_range: int = 0) -> av.VideoFrame:
    """A yuv420p frame as a decoder would give it, tagged with ``colorspace`` / ``color_range``."""
    planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


@pytest.mark.parametrize("colour", [(2, 0), (1, 1), (1, 2)])  # unspecified; BT.709 limited; BT.709 full range
def test_a_regions_rgb_is_the_whole_frames_rgb_there(colour):
    frame = _decoded(face_frame(0, 320, 240), *colour)
    image = YuvImage.from_frame(frame)
    assert image is not None and image.shape == (240, 320, 3)
    whole = image.rgb()
    for box in [(0, 0, 320, 240), (40, 22, 200, 180), (100, 60, 102, 62), (318, 238, 320, 240)]:
        x0, y0, x1, y1 = box
        np.testing.assert_array_equal(image.rgb(box), whole[y0:y1, x0:x1])
    # The frame's own colour matrix and range, as swscale reads them (its fast path rounds more coarsely).
    swscale = frame.to_ndarray(format="rgb24").astype(int)
    assert np.abs(whole - swscale).max() <= 3 and np.abs(whole - swscale).mean() < 1.5


@pytest.mark.parametrize(
    ("colour", "black", "white"), [((2, 0), 16, 235), ((1, 1), 16, 235), ((1, 2), 0, 255), ((9, 1), 16, 235)]
)
def test_the_colour_matrices_map_black_and_white_and_invert(colour, black, white):
    to_rgb, to_yuv = yuv_to_rgb_matrix(*colour), rgb_to_yuv_matrix(*colour)
    np.testing.assert_allclose(to_rgb @ [black, 128, 128, 1], 0, atol=1e-9)
    np.testing.assert_allclose(to_rgb @ [white, 128, 128, 1], 255, atol=1e-9)
    rgb = np.array([200.0, 30.0, 90.0])
    np.testing.assert_allclose(to_rgb @ np.append(to_yuv @ np.append(rgb, 1), 1), rgb, atol=1e-9)
    assert not np.allclose(yuv_to_rgb_matrix(1, 1), yuv_to_rgb_matrix(2, 0))  # BT.709 is not BT.601


def test_turned_planes_are_the_turned_rgb():
    frame = _decoded(face_frame(3, 96, 64))
    upright = YuvImage.from_frame(frame).rgb()
    for degrees in (90, 180, 270, -90):
        np.testing.assert_array_equal(YuvImage.from_frame(frame, degrees).rgb(), np.rot90(upright, k=degrees // 90))


def test_only_4_2_0_of_even_size_is_kept_as_planes():
    rgb = face_frame(0, 64, 48)
    assert YuvImage.from_frame(av.VideoFrame.from_ndarray(rgb, format="rgb24")) is None
    assert YuvImage.from_frame(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")) is None
    assert YuvImage.from_frame(_decoded(rgb)) is not None


def test_writing_back_changes_only_what_changed():
    image = YuvImage.from_frame(_decoded(face_frame(0, 128, 96), 1, 1))
    before = image.copy()
    box = (32, 20, 96, 80)
    rgb = image.rgb(box)
    image.put_rgb(box, rgb, np.zeros(rgb.shape[:2], bool))
    np.testing.assert_array_equal(image.data, before.data)
    image.put_rgb(box, rgb, np.ones(rgb.shape[:2], bool))  # a round trip: exact but where RGB clips
    assert np.abs(image.data.astype(int) - before.data).max() <= 3
    image = before.copy()
    changed = np.zeros(rgb.shape[:2], bool)
    changed[10:31, 15:40] = True  # odd edges: chroma samples half inside
    rgb[changed] = (200, 30, 90)
    image.put_rgb(box, rgb, changed)
    y, u, v = image.planes()
    y0, u0, v0 = before.planes()
    inside = np.zeros_like(y, bool)
    inside[30:51, 47:72] = True
    np.testing.assert_array_equal(y[~inside], y0[~inside])
    assert not np.array_equal(y[inside], y0[inside])
    block = np.zeros_like(u, bool)
    block[15:26, 23:36] = True  # every chroma sample with a changed pixel
    np.testing.assert_array_equal(u[~block], u0[~block])
    np.testing.assert_array_equal(v[~block], v0[~block])
    # The changed pixels read back as drawn where their chroma sample holds nothing else.
    back = image.rgb(box)
    assert np.abs(back[12:29, 17:38].astype(int) - (200, 30, 90)).max() <= 2


def test_even_box_grows_to_whole_chroma_samples_within_the_frame():
    assert even_box((3, 4, 9, 10), (20, 20)) == (2, 4, 10, 10)
    assert even_box((0, 1, 19, 19), (20, 20)) == (0, 0, 20, 20)


def _face(image_shape) -> Similarity:
    h, w = image_shape[:2]
    return Similarity(cx=w * 0.52, cy=h * 0.47, scale=h * 0.55, angle=0.15)


@pytest.mark.parametrize("compositor", [Compositor, TorchCompositor])
def test_the_crop_and_the_paste_on_planes_are_the_rgb_ones(compositor):
    rng = np.random.default_rng(0)
    planes = YuvImage.from_frame(_decoded(face_frame(0, 320, 240), 1, 1))
    rgb = planes.rgb()
    comp = compositor(64, CompositeOptions())
    tf = _face(rgb.shape)
    crop = crop_face(comp, planes, tf)
    # The chroma planes are warped at their own resolution: a few levels at colour edges, a fraction on average.
    diff = np.abs(crop.astype(int) - comp.crop(rgb, tf))
    assert diff.mean() < 1.0 and diff.max() <= 24
    # A drawing as smooth in colour as a face (4:2:0 keeps one colour per 2 x 2 pixels).
    shade = 50 * np.sin(np.arange(64) / 6.0)[:, None, None] + rng.normal(0, 3, (64, 64, 1))
    drawn = np.clip(crop + shade, 0, 255).astype(np.uint8)
    before = planes.copy()
    paste_face(comp, planes, drawn, crop, tf)
    comp.paste(rgb, drawn, crop, tf)
    out = planes.rgb()
    # The pasted pixels as the RGB paste made them, within what 4:2:0 keeps of them ...
    assert np.abs(out.astype(int) - rgb).mean() < 0.5 and np.abs(out.astype(int) - rgb).max() <= 16
    # ... and outside the pasted region every plane keeps its decoded value.
    x0, y0, x1, y1 = even_box(comp.region(tf, rgb.shape), rgb.shape)
    y, _, _ = planes.planes()
    y_before, _, _ = before.planes()
    outside = np.ones_like(y, bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(y[outside], y_before[outside])
    assert not np.array_equal(y, y_before)


def test_planes_are_written_and_read_as_they_were(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=6, width=96, height=64, frame_fn=face_frame)
    reader = VideoReader(src)
    kept = [f.image for f in reader.frames("planes")]
    assert all(isinstance(k, YuvImage) for k in kept)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=96, height=64, fps=reader.fps, options=LOSSLESS) as writer:
        for image in kept:
            writer.write(image)
    again = [f.image for f in VideoReader(out).frames("planes")]
    for a, b in zip(kept, again, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    both = list(VideoReader(src).frames("both"))
    np.testing.assert_array_equal(both[2].planes.data, kept[2].data)
    np.testing.assert_array_equal(both[2].image, list(VideoReader(src))[2].image)


def test_a_video_that_cannot_be_planes_is_read_as_rgb(tmp_path):
    odd = make_video(tmp_path / "odd.mp4", frames=3, width=95, height=63, pix_fmt="yuv444p")
    frames = list(VideoReader(odd).frames("planes"))
    assert all(isinstance(f.image, np.ndarray) and f.image.shape == (63, 95, 3) for f in frames)
    assert all(f.planes is None for f in VideoReader(odd).frames("both"))


def test_the_spool_gives_back_planes_and_rgb_as_offered(tmp_path):
    spool = FrameSpool(64, 48, [1, 4], tmp_path)
    planes = YuvImage.from_frame(_decoded(face_frame(0, 64, 48), 1, 2))
    rgb = face_frame(1, 64, 48)
    spool.offer(1, planes)
    spool.offer(4, rgb)
    spool.offer(2, rgb)  # not wanted
    back = spool.read(1)
    assert isinstance(back, YuvImage) and (back.colorspace, back.color_range) == (1, 2)
    np.testing.assert_array_equal(back.data, planes.data)
    np.testing.assert_array_equal(spool.read(4), rgb)
    with pytest.raises(IndexError):
        spool.read(2)
    spool.close()


def _tagged_video(path: Path, frames: int = 4) -> Path:
    """A BT.709, limited-range H.264 clip, tagged as such (as cameras and phones write them)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc, context.color_range = 1, 1, 1, 1
        for i in range(frames):
            frame = _decoded(face_frame(i, 96, 64), 1, 1)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_re_encode_keeps_the_sources_colour_tags_and_planes(tmp_path):
    src = _tagged_video(tmp_path / "bt709.mp4")
    assert probe_media(src).video.colour == ColourTags(1, 1, 1, 1)
    assert ColourTags(1, 1, 1, 1).describe() == "BT.709, limited range" and ColourTags().describe() == ""
    out = reencode(src, tmp_path / "out.mp4", options=LOSSLESS)
    assert out == 4
    assert probe_media(tmp_path / "out.mp4").video.colour == ColourTags(1, 1, 1, 1)
    for a, b in zip(VideoReader(src).frames("planes"), VideoReader(tmp_path / "out.mp4").frames("planes"), strict=True):
        np.testing.assert_array_equal(a.image.data, b.image.data)
        assert (b.image.colorspace, b.image.color_range) == (1, 1)


def test_rgb_frames_leave_the_output_untagged(tmp_path):
    out = tmp_path / "rgb.mp4"
    with VideoWriter(out, width=96, height=64, fps=25, options=LOSSLESS, colour=ColourTags(1, 1, 1, 1)) as writer:
        for i in range(3):
            writer.write(face_frame(i, 96, 64))
    assert probe_media(out).video.colour == ColourTags()  # converted with the default matrix, said as nothing


def test_a_full_range_clip_is_kept_as_planes_and_said_to_be_full_range(tmp_path):
    src = make_video(tmp_path / "j.mp4", frames=3, width=96, height=64, pix_fmt="yuvj420p", frame_fn=face_frame)
    planes = [f.image for f in VideoReader(src).frames("planes")]
    assert all(isinstance(p, YuvImage) and p.color_range == 2 for p in planes)
    np.testing.assert_array_equal(planes[0].rgb(), YuvImage(planes[0].data, 2, 2).rgb())
    swscale = next(iter(VideoReader(src))).image.astype(int)  # decoded as full range
    assert np.abs(planes[0].rgb().astype(int) - swscale).mean() < 1.5
    reencode(src, tmp_path / "out.mp4", options=LOSSLESS)
    assert probe_media(tmp_path / "out.mp4").video.colour.range == 2
    again = [f.image for f in VideoReader(tmp_path / "out.mp4").frames("planes")]
    for a, b in zip(planes, again, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_turned_clip_is_read_as_upright_planes_and_written_upright(tmp_path, rotation):
    src = make_video(tmp_path / "r.mp4", frames=3, width=96, height=64, rotation=rotation, frame_fn=face_frame)
    reader = VideoReader(src)
    rgb = [f.image for f in reader.frames()]
    planes = [f.image for f in reader.frames("planes")]
    assert all(p.shape == r.shape == (*reader.size[::-1], 3) for p, r in zip(planes, rgb, strict=True))
    assert np.abs(planes[1].rgb().astype(int) - rgb[1]).mean() < 1.5  # swscale's RGB, turned the same way
    reencode(src, tmp_path / "out.mp4", options=LOSSLESS)
    again = VideoReader(tmp_path / "out.mp4")
    assert again.size == reader.size and again.info.rotation == 0
    for a, b in zip(planes, (f.image for f in again.frames("planes")), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
