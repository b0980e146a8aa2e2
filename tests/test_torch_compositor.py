"""The compositor's pixel work in torch (used when the models run on a GPU) against OpenCV's, on the CPU here and on
CUDA where there is one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dubber.face.aligner import Similarity
from dubber.pipeline.compositor import CompositeOptions, Compositor, ReferenceDetail
from dubber.pipeline.face_redraw import compositor_for
from dubber.pipeline.torch_compositor import TorchCompositor, gaussian_blur
from dubber.render.hint_warp import thin_plate_read

S = 64


@pytest.mark.parametrize("sigma", [0.7, 3.2, 16.0])
@pytest.mark.parametrize("shape", [(37, 50, 3), (9, 20, 3)])  # the second narrower than the kernel
def test_the_blur_is_opencvs(sigma: float, shape: tuple[int, int, int]):
    image = np.random.default_rng(0).normal(0, 50, shape).astype(np.float32)
    expected = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    got = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1), sigma).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)


def _scene(seed: int, centre: tuple[float, float]) -> dict:
    """A smooth random frame, a face transform (rotated, 4 frame pixels a crop pixel), the drawing, the jaws and a
    reference frame's detail carried by a small spline."""
    rng = np.random.default_rng(seed)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8), (0, 0), 1.5)
    transform = Similarity(centre[0], centre[1], 4.0 * S, 0.12)
    original = cv2.warpAffine(frame, transform.to_matrix(S), (S, S))
    rendered = np.clip(original.astype(int) + 25 + rng.integers(-30, 30, original.shape), 0, 255).astype(np.uint8)
    x = np.linspace(0.24, 0.76, 17)
    jaw = np.stack([x, 0.5 + 0.2 * np.sin(np.linspace(0, np.pi, 17))], -1)
    g = torch.Generator().manual_seed(seed)
    source = 0.25 + 0.5 * torch.rand(1, 40, 2, generator=g)
    target = source + 0.02 * torch.randn(1, 40, 2, generator=g)
    detail = cv2.GaussianBlur(rng.integers(0, 256, (4 * S, 4 * S, 3), dtype=np.uint8), (0, 0), 1)
    reference = ReferenceDetail(detail, thin_plate_read(source, target, S)[0].numpy())
    return dict(
        frame=frame,
        rendered=rendered,
        original=original,
        transform=transform,
        reference=reference,
        jaws=np.stack([jaw, jaw + [0.0, 0.03]]),
    )


@pytest.mark.parametrize(
    "options",
    [CompositeOptions(detail=15.0), CompositeOptions(detail=0.0), CompositeOptions(colour_match=False)],
    ids=["detail", "no-detail", "no-colour-match"],
)
@pytest.mark.parametrize("centre", [(210.0, 150.0), (40.0, 280.0)], ids=["inside", "at-the-corner"])
def test_the_torch_paste_is_opencvs_to_a_level(options: CompositeOptions, centre: tuple[float, float]):
    scene = _scene(0, centre)
    frame = scene.pop("frame")
    cpu, tensors = frame.copy(), frame.copy()
    Compositor(S, options).paste(cpu, **scene)
    TorchCompositor(S, options).paste(tensors, **scene)
    changed = (cpu != frame).any(-1)
    assert changed.sum() > 500  # the corner scene's face lies half outside the frame
    diff = np.abs(cpu.astype(int) - tensors.astype(int))
    # OpenCV rounds its warp coordinates to 1/32 of a pixel; on this noisy drawing that moves a few pasted pixels
    # by up to 4 levels (where the face meets the frame's corner), 0.24-0.37 on average.
    assert diff.max() <= 4 and diff[changed].mean() < 0.4
    # Nothing outside the OpenCV paste's pixels moves, but for the polygon's rounding (a level at most there).
    assert diff[~changed].max() <= 1


@pytest.mark.parametrize(
    "transform",
    [
        Similarity(210.0, 150.0, 90.0, 0.1),  # the crop enlarges the face: no area filter
        Similarity(210.0, 150.0, 230.0, -0.2),  # 1.8 frame pixels a crop pixel: reduced by 1 (no whole factor)
        Similarity(210.0, 150.0, 290.0, 0.0),  # 2.3: reduced by 2 first
        Similarity(20.0, 290.0, 160.0, 0.3),  # half outside the frame: borders replicated
    ],
)
def test_the_torch_crop_is_opencvs_to_a_level(transform: Similarity):
    frame = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 256, (300, 420, 3), dtype=np.uint8), (0, 0), 1.5)
    expected = Compositor(S).crop(frame, transform)
    got = TorchCompositor(S).crop(frame, transform)
    assert got.shape == expected.shape == (S, S, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - expected.astype(int))
    # OpenCV's area filter weighs a region's last, partial block in; the block means leave it out: the crop's
    # outer pixels may differ by a few levels, its inside by rounding (on this frame's fine noise).
    assert diff[3:-3, 3:-3].max() <= 2 and diff.max() <= 5 and diff.mean() < 0.7


def test_the_paste_runs_where_the_models_run():
    assert type(compositor_for(torch.device("cpu"), S, CompositeOptions())) is Compositor


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_paste_on_cuda_is_opencvs_to_a_level():
    scene = _scene(1, (210.0, 150.0))
    frame = scene.pop("frame")
    cpu, gpu = frame.copy(), frame.copy()
    Compositor(S).paste(cpu, **scene)
    on_gpu = compositor_for(torch.device("cuda"), S, CompositeOptions())
    assert isinstance(on_gpu, TorchCompositor)
    on_gpu.paste(gpu, **scene)
    diff = np.abs(cpu.astype(int) - gpu.astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.1
    transform = Similarity(210.0, 150.0, 290.0, 0.1)
    crop_diff = np.abs(on_gpu.crop(frame, transform).astype(int) - Compositor(S).crop(frame, transform).astype(int))
    assert crop_diff[3:-3, 3:-3].max() <= 2 and crop_diff.max() <= 5


def test_a_dub_pasted_by_torch_is_the_opencv_dub_to_a_level(tmp_path, monkeypatch):
    from dubber import DubbingPipeline
    from dubber.pipeline import face_redraw
    from tests.dub_checks import frames_of
    from tests.media_factory import make_audio, make_face_video
    from tests.tiny_bundle import TINY_BUNDLE, make_tiny_weights

    pipe = DubbingPipeline.from_pretrained(make_tiny_weights(tmp_path / "weights") / TINY_BUNDLE, device="cpu")
    clip = make_face_video(tmp_path / "face.mp4", frames=12)
    speech = make_audio(tmp_path / "speech.wav", seconds=0.5)
    pipe(clip, speech, tmp_path / "opencv.mp4", steps=1, crf=0)
    monkeypatch.setattr(face_redraw, "compositor_for", lambda device, size, options: TorchCompositor(size, options))
    result = pipe(clip, speech, tmp_path / "torch.mp4", steps=1, crf=0)
    assert result.face_frames > 0
    opencv, pasted = frames_of(tmp_path / "opencv.mp4"), frames_of(tmp_path / "torch.mp4")
    assert len(opencv) == len(pasted) == result.frames
    diff = np.abs(np.stack(opencv).astype(int) - np.stack(pasted).astype(int))
    # The face's region alone, by float rounding, through x264's 4:2:0 chroma (a level of RGB spreads there).
    assert diff.max() <= 6 and (diff > 0).mean() < 0.02 and (diff > 2).mean() < 0.001
