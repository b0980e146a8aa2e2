"""The references' detail at the face's resolution: kept by the pool, carried onto the target's landmarks, and given
to the compositor where the drawing agrees with it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dubber.face.aligner import FaceAligner, Similarity
from dubber.pipeline.analysis import ReferencePool
from dubber.pipeline.compositor import CompositeOptions, Compositor, ReferenceDetail
from dubber.pipeline.face_redraw import paste_rows_from
from dubber.pipeline.torch_compositor import TorchCompositor
from dubber.render.hint_warp import thin_plate_read


def _points(seed: int, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    source = 0.25 + 0.5 * torch.rand(1, n, 2, generator=g)
    return source, source + 0.02 * torch.randn(1, n, 2, generator=g)


def test_the_reference_is_carried_into_the_frame_as_the_spline_evaluated_at_its_resolution():
    source, target = _points(0)
    size = 256
    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8), (0, 0), 2)
    read = thin_plate_read(source, target, 128)[0].numpy()
    region = (size, size)  # a frame whose pixels are the detail crop's: frame pixel = crop unit x 256
    carried = ReferenceDetail(image, read).in_region(Similarity(size / 2, size / 2, size, 0.0), 0, 0, region)
    exact = thin_plate_read(source, target, size)[0].numpy() * size
    expected = cv2.remap(image, exact[..., 0], exact[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(carried[inner] - expected[inner]).mean() < 0.3  # levels of 255
    still = ReferenceDetail(image, thin_plate_read(source, source, 128)[0].numpy())
    moved = still.in_region(Similarity(size / 2 + 10, size / 2 + 20, size, 0.0), 10, 20, region)
    assert np.abs(moved[inner] - image[inner]).max() < 1.0  # no motion, the region where the crop lies: the crop


def test_the_detail_crop_follows_the_face_size_up_to_its_limit():
    aligner = FaceAligner(32)
    frame = np.zeros((400, 400, 3), np.uint8)
    assert aligner.detail_crop(frame, Similarity(50.0, 50.0, 30.0, 0.0), 128) is None  # smaller than the crop
    assert aligner.detail_crop(frame, Similarity(50.0, 50.0, 38.0, 0.0), 128) is None  # within a fifth of it
    assert aligner.detail_crop(frame, Similarity(50.0, 50.0, 90.5, 0.0), 128).shape == (91, 91, 3)
    assert aligner.detail_crop(frame, Similarity(50.0, 50.0, 300.0, 0.0), 128).shape == (128, 128, 3)


def test_the_pool_bins_frames_by_opening_and_turn_and_keeps_the_detail_of_those_it_holds():
    pool = ReferencePool(bins=4, max_opening=1.0)
    points = np.zeros((131, 2), np.float32)

    def offer(index: int, opening: float, yaw: float, detail: bool = True, usable: bool = True) -> None:
        crop = np.full((8, 8, 3), index, np.uint8)
        big = np.full((16, 16, 3), index, np.uint8) if detail else None
        pool.offer(index, opening, (yaw, 0.0), usable, lambda: crop, points, lambda: big)

    offer(0, 0.1, 5.0)
    offer(1, 0.1, 1.0)  # the same bin, more frontal: replaces frame 0
    offer(2, 0.9, 0.0, detail=False)  # a face no larger than the crop
    offer(3, 0.1, 6.0)  # turned 6 degrees: the frontal bin's (1 degree) is better
    offer(4, 0.1, 24.0)  # turned 24 degrees: a bin of its own (30 +- 7.5) ...
    offer(5, 0.1, 29.0)  # ... where a frame nearer 30 degrees wins
    offer(6, 0.6, 50.0, usable=False)  # beyond the reference limits: kept only where nothing else is
    held = pool.held()
    assert [e.index for e in held] == [1, 2, 5, 6]
    assert [e.detail is None for e in held] == [False, True, False, False] and held[2].detail.max() == 5
    _, _, frames = pool.choose(2)  # the fixed references: frontal frames only
    assert sorted(frames.tolist()) == [1, 2]


def test_small_faces_take_no_reference_detail():
    size = 32
    comp = Compositor(size, CompositeOptions(detail=15.0))
    rng = np.random.default_rng(0)
    source = np.full((64, 64, 3), 120.0, np.float32)
    drawing = source + 80  # changed everywhere: only a reference could give detail
    reference = drawing + rng.normal(0, 12, (64, 64, 1)).astype(np.float32).repeat(3, -1)
    at = {fpc: comp.with_source_detail(drawing, source.astype(np.uint8), fpc, reference) for fpc in (1.8, 3.0, 4.5)}
    assert np.abs(at[1.8] - drawing).max() < 1e-3  # 1.8 frame pixels a crop pixel: the drawing holds the detail
    assert 0 < np.std(at[3.0] - drawing) < np.std(at[4.5] - drawing)  # half of it at 3, all from 4 on


def test_where_the_mouth_changed_the_reference_gives_its_detail_at_the_frames_strength():
    rng = np.random.default_rng(0)
    size, scale = 32, 4.0  # a crop pixel spans 4 frame pixels: the reference's detail counts in full
    comp = Compositor(size, CompositeOptions(detail=15.0, reference_band=1.0))
    smooth = np.full((96, 144, 3), 120.0, np.float32)

    def texture() -> np.ndarray:
        return rng.normal(0, 12, (96, 144, 1)).astype(np.float32).repeat(3, -1)

    own, theirs = texture(), texture()
    source = smooth + own
    drawing = smooth.copy()
    drawing[:, 48:96] += 15 * np.log(2)  # the frame half agrees here ...
    drawing[:, 96:] += 80  # ... and not at all here: the mouth changed
    reference = drawing + theirs  # the reference, drawn as the target, agrees with the drawing ...
    reference[:, :48] += 60  # ... except where the frame does
    added = comp.with_source_detail(drawing, source, scale, reference) - drawing
    agreed, half, changed = (slice(8, 88), slice(8, 40)), (slice(8, 88), slice(56, 88)), (slice(8, 88), slice(104, 136))
    assert np.corrcoef(added[agreed].ravel(), own[agreed].ravel())[0, 1] > 0.9
    assert np.corrcoef(added[changed].ravel(), theirs[changed].ravel())[0, 1] > 0.9
    assert 0.6 < np.std(added[changed]) / np.std(theirs[changed]) < 1.2
    # Half one texture, half the other, at one texture's strength: a plain weighted sum would be 0.71 of it.
    assert 0.85 < np.std(added[half]) / 12 < 1.15
    untouched = comp.with_source_detail(drawing, source, 1.0, reference)
    assert untouched is drawing  # a face no larger than the crop: unchanged


def test_a_large_face_is_dubbed_with_its_references_detail_and_nothing_outside_changes(tmp_path, monkeypatch):
    from dubber.media.encode_options import VideoEncodeOptions
    from dubber.media.transcode import reencode
    from dubber.pipeline import DubbingPipeline, face_redraw
    from tests.dub_checks import frames_of, outside_mask
    from tests.media_factory import make_audio, make_face_video, psnr

    monkeypatch.delenv("DUB_WEIGHTS", raising=False)
    video = make_face_video(tmp_path / "close-up.mp4", frames=12, size=640)  # about 4.5 frame px a crop px
    audio = make_audio(tmp_path / "speech.wav", seconds=12 / 25, freqs=(220.0,))
    given: list[bool] = []
    details = face_redraw.FaceRedrawer.reference_details

    def counted(self, drawn):
        out = details(self, drawn)
        given.extend(d is not None for d in out)
        return out

    monkeypatch.setattr(face_redraw.FaceRedrawer, "reference_details", counted)
    pipe = DubbingPipeline.from_pretrained("default", device="cpu")
    result = pipe(video, audio, tmp_path / "out.mp4")
    assert result.dubbed_frames == 12 and len(given) == 12 and all(given)
    reencode(video, tmp_path / "plain.mp4", options=VideoEncodeOptions())
    dubbed, plain = frames_of(tmp_path / "out.mp4"), frames_of(tmp_path / "plain.mp4")
    masks = outside_mask(video, 640, dilate=16)  # one H.264 macroblock: the encoder spreads changes that far
    for i, keep in enumerate(masks):
        assert keep is not None and psnr(dubbed[i][keep], plain[i][keep]) > 40, f"frame {i} changed outside the face"


def test_a_read_from_a_first_row_is_the_whole_reads_rows_and_the_identity_above():
    source, target = _points(1, n=131)
    whole = thin_plate_read(source, target, 128)
    part = thin_plate_read(source, target, 128, first_row=55)
    torch.testing.assert_close(part[:, 55:], whole[:, 55:], rtol=0, atol=0)
    axis = torch.arange(128) / 128  # pixel centres as the spline places them
    torch.testing.assert_close(part[0, :55, :, 0], axis[None].expand(55, -1), rtol=0, atol=0)
    torch.testing.assert_close(part[0, :55, :, 1], axis[:55, None].expand(-1, 128), rtol=0, atol=0)


@pytest.mark.parametrize("angle", [0.0, 0.35, -0.35])  # a head rolled 20 degrees either way
@pytest.mark.parametrize("frame_per_crop", [2.5, 4.0])  # some, then all, of the reference's detail
@pytest.mark.parametrize("compositor", [Compositor, TorchCompositor])
def test_a_pasted_hint_reaches_the_frame_from_its_first_pasted_row_down(angle, frame_per_crop, compositor):
    """The drawing workers compute the hint's spline only from ``paste_rows_from`` down on frames the reference
    blend pastes alone: nothing the paste does may read the rows above."""
    from dubber.render.face_mask import lower_face_mask

    size = 128
    first = paste_rows_from(size)
    assert 40 < first < 64 and lower_face_mask(size)[:first].max() == 0
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 1.5)
    transform = Similarity(640.0, 360.0, frame_per_crop * size, angle)
    original = cv2.warpAffine(frame, transform.to_matrix(size), (size, size))
    rendered = np.clip(original.astype(int) + rng.integers(-40, 40, original.shape), 0, 255).astype(np.uint8)
    source, target = _points(2, n=131)
    read = thin_plate_read(source, target, size)[0].numpy()
    garbled = read.copy()
    garbled[:first] = rng.uniform(-1, 2, garbled[:first].shape)  # anything: it must not reach the frame
    detail = cv2.GaussianBlur(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), (0, 0), 1)
    x = np.linspace(0.24, 0.76, 17)
    jaw = np.stack([x, 0.55 + 0.3 * np.sin(np.linspace(0, np.pi, 17))], -1)
    for jaws in (None, np.stack([jaw, jaw + [0.0, 0.03]])):
        pasted = []
        for reads in (read, garbled):
            out = frame.copy()
            comp = compositor(size, CompositeOptions(detail=15.0))
            comp.paste(out, rendered, original, transform, ReferenceDetail(detail, reads), jaws)
            pasted.append(out)
        assert (pasted[0] != frame).any()
        np.testing.assert_array_equal(pasted[1], pasted[0])
