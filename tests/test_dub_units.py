"""The dub pipeline's parts on their own: timeline, compositor, chunked landmark motion, frame spool, options."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from dubber.audio.features import AudioFeatures
from dubber.errors import InputError
from dubber.face.aligner import Similarity, apply_affine, invert_affine
from dubber.media.video_reader import VideoReader
from dubber.models.landmark_sequence import predict_sequence
from dubber.pipeline import DubOptions, Timeline
from dubber.pipeline.compositor import CompositeOptions, Compositor
from dubber.pipeline.frame_source import FrameSpool, frames_in_order
from dubber.pipeline.motion import PLAN_STRIDE, MotionPlanner
from dubber.render.face_mask import LOWER_FACE_POLYGON, lower_face_mask
from tests.media_factory import make_video
from tests.tiny_bundle import moving_tiny_completer


# -- timeline -------------------------------------------------------------------------------------------------------
def test_timeline_extends_ping_pong_loop_and_freeze():
    assert Timeline(4, 11, "pingpong").source_indices() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert Timeline(4, 11, "loop").source_indices() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    assert Timeline(4, 7, "freeze").source_indices() == [0, 1, 2, 3, 3, 3, 3]
    assert Timeline(1, 3, "pingpong").source_indices() == [0, 0, 0]  # a still image
    assert Timeline(2, 5, "pingpong").source_indices() == [0, 1, 0, 1, 0]


def test_timeline_cuts_or_keeps_the_rest():
    cut = Timeline(10, 4)
    assert (cut.total_frames, cut.rest_frames, cut.source_indices()) == (4, 0, [0, 1, 2, 3])
    kept = Timeline(10, 4, keep_rest=True)
    assert (kept.total_frames, kept.rest_frames, kept.source_indices()) == (10, 6, list(range(10)))
    assert Timeline(3, 9, keep_rest=True).rest_frames == 0  # nothing to keep when the video is the shorter one
    assert Timeline.plan(100, 2.02, 25).dub_frames == 50  # round(2.02 * 25) = round(50.5) -> 50 (banker's)
    assert Timeline.plan(100, 1.0, 30000 / 1001).dub_frames == 30


def test_a_dub_that_starts_into_the_video_shows_the_source_before_it():
    late = Timeline.plan(10, 0.12, 25, start_seconds=0.16)  # 4 frames of the source, then 3 dubbed
    assert (late.lead_frames, late.dub_frames, late.total_frames, late.dub_end) == (4, 3, 7, 7)
    assert late.source_indices() == list(range(7)) and late.dubbed_source_indices(0, 3) == [4, 5, 6]
    kept = Timeline(10, 3, keep_rest=True, lead_frames=4)
    assert (kept.rest_frames, kept.total_frames, kept.source_indices()) == (3, 10, list(range(10)))
    # a video too short from the start on is extended over its frames from the start, not from its beginning
    longer = Timeline(6, 7, "pingpong", lead_frames=3)
    assert longer.source_indices() == [0, 1, 2, 3, 4, 5, 4, 3, 4, 5]
    assert longer.dubbed_source_indices(2, 5) == [5, 4, 3] and longer.revisited() == [3, 4, 5]
    assert Timeline(6, 5, "loop", lead_frames=3).source_indices() == [0, 1, 2, 3, 4, 5, 3, 4]
    assert Timeline(6, 5, "freeze", lead_frames=3).forward_only
    assert Timeline(6, 4, "pingpong", lead_frames=5).source_indices() == [0, 1, 2, 3, 4, 5, 5, 5, 5]
    with pytest.raises(ValueError, match="start on one of the source's frames"):
        Timeline(6, 4, lead_frames=6)


def test_a_start_is_seconds_or_a_clock_time():
    from dubber.pipeline.timeline import parse_time

    for text, seconds in (("83.5", 83.5), ("1:23.5", 83.5), ("00:01:23.500", 83.5), ("2:00:00", 7200.0), ("0", 0)):
        assert parse_time(text) == seconds
    for bad in ("", "-1", "1:60", "1::2", "a", "1:2:3:4", "inf", "nan"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_a_start_past_the_end_or_on_a_photo_is_refused_naming_the_file():
    from dubber.pipeline.timeline import check_start

    check_start(Path("v.mp4"), 0.0, 1, 25.0)  # a photo dubbed from its beginning
    check_start(Path("v.mp4"), 0.36, 10, 25.0)  # frame 9 of 10: the dub starts on the last frame
    with pytest.raises(InputError, match=r"v\.mp4: --start 0\.4 s is at or past the video's end \(0\.40 s\)"):
        check_start(Path("v.mp4"), 0.4, 10, 25.0)
    with pytest.raises(InputError, match="still image"):
        check_start(Path("p.png"), 1.0, 1, 25.0)
    with pytest.raises(InputError, match="start="):
        DubOptions(start=-1.0)
    with pytest.raises(InputError, match="person=-1 must be 0 or more"):
        DubOptions(person=-1)


def test_the_sound_is_the_videos_own_before_and_after_the_dub(tmp_path):
    from dubber.media import probe_media
    from dubber.media.audio_feed import AudioSpan
    from dubber.pipeline.output_streams import output_audio

    video = make_video(tmp_path / "v.mp4", frames=10, audio_rate=16000)
    info, speech = probe_media(video), tmp_path / "speech.wav"
    (track,) = output_audio(speech, info, Timeline(10, 3, keep_rest=True, lead_frames=4), 25.0)
    assert track.spans == (AudioSpan(video, 0.0, 0.16), AudioSpan(speech, 0.0, 0.12), AudioSpan(video, 0.28, 0.12))
    (track,) = output_audio(speech, info, Timeline(10, 3, lead_frames=4), 25.0)
    assert track.spans == (AudioSpan(video, 0.0, 0.16), AudioSpan(speech, 0.0, 0.12))


def test_timeline_order_needs():
    assert Timeline(10, 4).forward_only and Timeline(10, 10).forward_only and Timeline(3, 9, "freeze").forward_only
    assert not Timeline(3, 9, "pingpong").forward_only and not Timeline(3, 9, "loop").forward_only
    with pytest.raises(ValueError, match="fit="):
        Timeline(3, 4, "bounce")


# -- compositor -----------------------------------------------------------------------------------------------------
def _face_transform(size: int = 200) -> Similarity:
    return Similarity(cx=110.0, cy=95.0, scale=150.0, angle=0.15)


def test_compositor_leaves_pixels_outside_the_mask_untouched():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (200, 220, 3), dtype=np.uint8)
    before = frame.copy()
    comp = Compositor(64)
    rendered = np.full((64, 64, 3), 255, np.uint8)
    comp.paste(frame, rendered, np.zeros((64, 64, 3), np.uint8), _face_transform())
    changed = np.any(frame != before, axis=-1)
    # The polygon in frame pixels: nothing outside it may change.
    import cv2

    poly = apply_affine(invert_affine(_face_transform().to_matrix(1)), LOWER_FACE_POLYGON)
    inside = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(poly).astype(np.int32)], 1)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8))  # rounding of the polygon's edge
    assert changed.any() and not (changed & (inside == 0)).any()
    assert comp.alpha.max() == pytest.approx(1.0, abs=1e-3) and (comp.alpha[lower_face_mask(64) == 0] == 0).all()


def test_the_alpha_is_full_over_the_upper_lip_and_soft_across_the_cheeks():
    """Above the mouth the region's top edge lies just over the upper lip: the alpha must be full by y 0.57 there
    (the crop is moved so that upper lips start at 0.57 or lower). Across the cheeks a narrow soft edge would show
    on a large face: there it ramps over several crop pixels."""
    comp = Compositor(128)
    rows = slice(round(0.57 * 128), round(0.75 * 128))  # from the upper lip's top down past the lower lip
    assert comp.alpha[rows, round(0.40 * 128) : round(0.60 * 128)].min() > 0.99
    corners = (slice(round(0.62 * 128), round(0.72 * 128)), slice(round(0.35 * 128), round(0.65 * 128)))
    assert comp.alpha[corners].min() > 0.99
    row = comp.alpha[round(0.62 * 128)]  # across the left cheek's edge, the region's side at x 0.17-0.2
    ramp = np.flatnonzero((row[:40] > 0.02) & (row[:40] < 0.98))
    assert len(ramp) >= 8, row[:40]
    narrow = Compositor(128, CompositeOptions(feather=1 / 96)).alpha[round(0.62 * 128)]
    assert len(np.flatnonzero((narrow[:40] > 0.02) & (narrow[:40] < 0.98))) < len(ramp)


def test_the_paste_stops_below_the_lower_of_the_two_jaws():
    comp = Compositor(64)
    x = np.linspace(0.24, 0.76, 17)
    source_jaw = np.stack([x, 0.5 + 0.2 * np.sin(np.linspace(0, np.pi, 17))], -1)  # chin at y 0.70
    target_jaw = source_jaw + [0.0, 0.05]  # the dub's jaw dropped: chin at y 0.75
    alpha = comp.jaw_alpha(np.stack([source_jaw, target_jaw]))
    assert (alpha <= comp.alpha + 1e-6).all()  # never beyond the fixed region
    below = int(64 * (0.75 + comp.options.jaw_margin)) + 6  # past the margin and the feather
    assert alpha[below:].max() == 0 and comp.alpha[below:].max() > 0.5  # neck and collar: the source's
    mouth = (slice(None, int(64 * 0.68)), slice(int(64 * 0.4), int(64 * 0.6)))
    np.testing.assert_allclose(alpha[mouth], comp.alpha[mouth], atol=1e-3)  # the mouth, inside the jaw: drawn


def test_colour_matching_removes_a_drift_and_keeps_the_detail():
    rng = np.random.default_rng(1)
    comp = Compositor(64)
    original = rng.integers(60, 190, (64, 64, 3), dtype=np.uint8)
    detail = rng.integers(-20, 20, (64, 64, 3))
    rendered = np.clip(original.astype(int) + 30 + detail, 0, 255).astype(np.uint8)  # brighter, plus new detail
    matched = comp.colour_matched(rendered, original)
    mask = lower_face_mask(64) > 0
    drift_before = np.abs(rendered[mask].astype(float).mean(0) - original[mask].mean(0))
    drift_after = np.abs(matched[mask].mean(0) - original[mask].mean(0))
    assert (drift_before > 25).all() and (drift_after < 4).all()
    assert np.corrcoef((matched - original)[mask].ravel(), detail[mask].ravel())[0, 1] > 0.9  # detail survives
    off = Compositor(64, CompositeOptions(colour_match=False))
    assert np.array_equal(off.colour_matched(rendered, original), rendered.astype(np.float32))


# -- landmark motion in chunks ----------------------------------------------------------------------------------------
def test_the_planned_jaw_ends_where_the_source_frames_jaw_ends():
    from dubber.pipeline.motion import anchored_jaw

    rng = np.random.default_rng(0)
    content = rng.uniform(0.2, 0.8, (3, 57, 2)).astype(np.float32)
    source_jaw = rng.uniform(0.2, 0.8, (3, 17, 2)).astype(np.float32)
    out = anchored_jaw(content, source_jaw)
    np.testing.assert_allclose(out[:, [0, 16]], source_jaw[:, [0, 16]], atol=1e-6)  # by the ears: the pose's
    np.testing.assert_array_equal(out[:, 8], content[:, 8])  # the chin: the speech's
    np.testing.assert_array_equal(out[:, 17:], content[:, 17:])  # the lips untouched
    halfway = content[:, 4] + 0.5 * (source_jaw[:, 0] - content[:, 0])
    np.testing.assert_allclose(out[:, 4], halfway, atol=1e-6)  # the move fades along the contour
    assert not np.shares_memory(out, content)


def test_chunked_motion_equals_the_whole_sequence():
    model = moving_tiny_completer()  # a head that does something, so the comparison is not between constants
    rng = np.random.default_rng(0)
    n_src, frames = 9, 150  # blocks of 64 frames, some starting at odd frames (chunks of 3)
    mel = AudioFeatures(rng.normal(size=(int(frames / 25 * 80) + 20, 80)).astype(np.float32))
    points = rng.uniform(0.2, 0.8, (n_src, 131, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    points[3] = np.nan  # a frame without a face takes its neighbour's pose
    fill = np.arange(n_src)
    fill[3] = 2
    timeline = Timeline(n_src, frames, "pingpong")
    planner = MotionPlanner(model, mel, 25.0, timeline, points, fill, refs)
    assert np.isfinite(planner.pose(0, frames)).all()
    windows = mel.windows(np.arange(frames) / 25.0)
    whole = predict_sequence(model, windows, planner.pose(0, frames), refs, stride=PLAN_STRIDE)
    assert PLAN_STRIDE > 1 and not np.allclose(whole, predict_sequence(model, windows, planner.pose(0, frames), refs))
    for chunk in (1, 3, 8):
        parts = np.concatenate([planner.content(s, min(s + chunk, frames)) for s in range(0, frames, chunk)])
        np.testing.assert_allclose(parts, whole, atol=1e-5)
    targets = planner.targets(4, 9)
    assert targets.shape == (5, 131, 2)
    np.testing.assert_array_equal(targets[:, :74], points[timeline.source_indices(4, 9), :74])
    with pytest.raises(ValueError, match="outside the dubbed range"):
        planner.content(148, 152)


def test_motion_planned_ahead_is_the_motion_planned_on_demand(one_torch_thread):
    from dubber.models.landmark_ensemble import LandmarkEnsemble

    torch.manual_seed(0)
    members = {name: moving_tiny_completer(seed=None) for name in ("a", "b", "c")}
    model = LandmarkEnsemble(members, {"a": 0.5, "b": 0.3, "c": 0.2})
    rng = np.random.default_rng(1)
    n_src, frames = 12, 150  # more than one block
    mel = AudioFeatures(rng.normal(size=(int(frames / 25 * 80) + 20, 80)).astype(np.float32))
    points = rng.uniform(0.2, 0.8, (n_src, 131, 2)).astype(np.float32)
    refs = rng.uniform(0.2, 0.8, (4, 131, 2)).astype(np.float32)
    timeline = Timeline(n_src, frames, "pingpong")
    on_demand = MotionPlanner(model, mel, 25.0, timeline, points, np.arange(n_src), refs)
    ahead = MotionPlanner(model, mel, 25.0, timeline, points, np.arange(n_src), refs)
    with ThreadPoolExecutor(2) as pool:
        ahead.plan_ahead(pool)
    first = ahead._block
    assert first is not None and first[:2] == (0, 64)
    got = np.concatenate([ahead.targets(s, min(s + 8, frames)) for s in range(0, frames, 8)])
    want = np.concatenate([on_demand.targets(s, min(s + 8, frames)) for s in range(0, frames, 8)])
    np.testing.assert_array_equal(got, want)
    assert ahead.pool is None  # the pool, shut down after the plan, is not kept


# -- spool and options ----------------------------------------------------------------------------------------------
def test_frame_spool_keeps_the_wanted_frames_and_reads_them_back_by_index(tmp_path):
    spool = FrameSpool(6, 4, [2, 0], folder=tmp_path)
    frames = [np.full((4, 6, 3), i * 40, np.uint8) + np.arange(6, dtype=np.uint8)[None, :, None] for i in range(3)]
    for i, f in enumerate(frames):
        spool.offer(i, f)
    assert spool.holds([0, 2]) and not spool.holds([1])
    for i in (2, 0, 2):
        np.testing.assert_array_equal(spool.read(i), frames[i])
    with pytest.raises(IndexError):
        spool.read(1)
    spool.close()


@pytest.mark.parametrize(
    ("fit", "dub", "expected"),
    [
        ("pingpong", 6, []),  # equal length: one forward pass
        ("pingpong", 8, [3, 4]),  # two frames longer: the way back
        ("pingpong", 40, [0, 1, 2, 3, 4, 5]),
        ("loop", 8, [0, 1]),
        ("freeze", 40, []),
    ],
)
def test_timeline_revisits_only_what_a_forward_decode_cannot_give(fit, dub, expected):
    timeline = Timeline(6, dub, fit)
    assert timeline.revisited() == expected
    # every frame the output shows after a later one is among them
    order = timeline.source_indices()
    late = {s for k, s in enumerate(order) if s < max(order[: k + 1])}
    assert late <= set(expected)


def test_frames_in_order_decodes_forward_and_reads_the_spool_only_for_revisits(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=6, width=32, height=24)
    timeline = Timeline(6, 9, "pingpong")
    decoded = [f.image for f in VideoReader(video)]
    spool = FrameSpool(32, 24, timeline.revisited(), folder=tmp_path)
    for i, image in enumerate(decoded):
        spool.offer(i, image)
    got = list(frames_in_order(VideoReader(video), timeline.source_indices(), spool))
    for image, s in zip(got, timeline.source_indices(), strict=True):
        np.testing.assert_array_equal(image, decoded[s])
    with pytest.raises(ValueError, match="without a spool"):
        list(frames_in_order(VideoReader(video), timeline.source_indices(), None))


def test_dub_options_validate_in_one_line():
    with pytest.raises(InputError) as err:
        DubOptions(steps=0, fit="bounce", preset="fastest")
    message = str(err.value)
    assert "steps=0" in message and "fit='bounce'" in message and "preset='fastest'" in message
    assert "\n" not in message
    assert DubOptions().updated(steps=4, fps=29.97).fps.denominator in (100, 1001)
    with pytest.raises(TypeError, match="unknown dub option"):
        DubOptions().updated(stpes=4)


def test_renderer_weights_carry_their_default_steps(tmp_path):
    from dubber.models.renderer_unet import RendererUNet, renderer_config
    from dubber.render import FaceRenderer

    torch.manual_seed(0)
    FaceRenderer(RendererUNet(**renderer_config("tiny")), default_steps=3).save_pretrained(tmp_path / "r")
    assert FaceRenderer.from_pretrained(tmp_path / "r").default_steps == 3
    (tmp_path / "r" / "renderer.json").write_text('{"scheduler": "ddim"}')  # older folders: 8
    loaded = FaceRenderer.from_pretrained(tmp_path / "r")
    assert loaded.default_steps == 8 and loaded.scheduler_name == "ddim"


def test_nearest_references_follow_the_target_mouth():
    from dubber.pipeline.face_redraw import ReferenceSet

    rng = np.random.default_rng(0)
    pool_points = torch.from_numpy(rng.uniform(0.2, 0.8, (5, 131, 2)).astype(np.float32))
    pool_crops = torch.arange(5, dtype=torch.float32)[:, None, None, None].expand(5, 3, 4, 4)
    yaw = torch.zeros(5)
    refs = ReferenceSet(np.zeros((1, 131, 2)), pool_crops[:3], pool_points[:3], {}, pool_crops, pool_points, yaw)
    targets = pool_points[[3, 1]].clone()
    targets[:, :74] = 0.5  # pose does not count: the mouth chooses
    crops, points = refs.nearest(targets, 3)
    assert crops.shape == (2, 3, 3, 4, 4) and points.shape == (2, 3, 131, 2)
    assert crops[0, 0, 0, 0, 0] == 3 and crops[1, 0, 0, 0, 0] == 1
    # The mouth's shape chooses, not where it sits: frame 2's lips moved (with its jaw) still win for frame 2's
    # mouth, against frame 4 whose jaw and lip centre match the target but whose mouth is another shape.
    lips = slice(74 + 17, 131)
    moved = pool_points.clone()
    moved[2, 74:] += 0.25  # lips and jaw 0.35 away: lip and jaw distance alone would pick frame 4 (0.22)
    moved[4, 74:91] = pool_points[2, 74:91]
    moved[4, lips] += pool_points[2, lips].mean(0) - moved[4, lips].mean(0)
    shape = ReferenceSet(refs.landmark_sets, pool_crops[:3], moved[:3], {}, pool_crops, moved, yaw)
    assert shape.nearest_order(pool_points[[2]], 1).item() == 2
    two = pool_crops[:2], pool_points[:2], yaw[:2]
    few = ReferenceSet(refs.landmark_sets, pool_crops[:1], pool_points[:1], {}, *two)
    crops, _ = few.nearest(targets, 3)  # fewer pool frames than references: the nearest repeats
    assert crops.shape[1] == 3 and crops[0, 2, 0, 0, 0] == crops[0, 0, 0, 0, 0]


def test_a_turned_head_is_hinted_by_a_frame_turned_the_same_way():
    from dubber.pipeline.face_redraw import ReferenceSet

    rng = np.random.default_rng(1)
    mouth = torch.from_numpy(rng.uniform(0.2, 0.8, (1, 131, 2)).astype(np.float32))
    pool_points = mouth.repeat(3, 1, 1)
    lips = pool_points[:, 74 + 17 :]
    centre = lips.mean(1, keepdim=True)
    lips[1] = centre[1] + (lips[1] - centre[1]) * 1.02  # frame 1's mouth a hair wider than the target's ...
    lips[2] = centre[2] + (lips[2] - centre[2]) * 1.5  # ... and frame 2's much wider
    yaw = torch.tensor([0.0, 25.0, 25.0])  # ... but frames 1 and 2 are turned as the target is
    crops = torch.zeros(3, 3, 4, 4)
    refs = ReferenceSet(np.zeros((1, 131, 2)), crops, pool_points, {}, crops, pool_points, yaw)
    target = mouth.clone()
    assert refs.nearest_order(target, 1).item() == 0  # the head's turn unknown: the mouth alone
    assert refs.nearest_order(target, 1, torch.tensor([0.0])).item() == 0
    assert refs.nearest_order(target, 1, torch.tensor([25.0])).item() == 1


def test_freed_frame_memory_is_trimmed_on_linux(monkeypatch):
    import sys

    from dubber.media import heap

    calls = []
    monkeypatch.setattr(heap, "trim_heap", lambda: calls.append(1) or True)
    trim = heap.HeapTrimmer(every=3)
    for _ in range(7):
        trim()
    trim(5)
    assert len(calls) == 3  # after 3, 6 and 11 frames
    monkeypatch.undo()
    if sys.platform.startswith("linux"):
        assert heap.trim_heap()


def test_the_track_grows_past_an_under_declared_frame_count_and_fills_faceless_frames():
    from dubber.pipeline.analysis import ReferencePool, _FrameRows

    rows = _FrameRows(expected=3)  # the container said 3 frames; 40 come
    faces = [i not in (0, 1, 17, 18, 19, 39) for i in range(40)]
    for i, face in enumerate(faces):
        p = np.full((131, 2), i, np.float32) if face else None
        tf = np.array([1.0, 0, i, 0]) if face else None
        rows.add(i / 25, tf, p, 0.1 if face else np.nan, face, 0.0 if face else np.nan)
    track = rows.track(ReferencePool(), {})
    assert track.frames == 40 and track.has_face.tolist() == faces
    assert np.isnan(track.points[17]).all() and track.points[16, 0, 0] == 16 and track.transforms[5, 2] == 5
    assert track.times[-1] == 39 / 25 and track.frontal.sum() == 34
    assert track.filled_index().tolist() == [2, 2, *range(2, 17), 16, 20, 20, *range(20, 39), 38]  # ties: later
    np.testing.assert_array_equal(track.filled_points(), track.points[track.filled_index()])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident set from /proc")
def test_a_container_declaring_far_too_many_frames_costs_no_memory():
    from dubber.pipeline.analysis import ReferencePool, _FrameRows

    def resident_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    before = resident_mb()
    rows = _FrameRows(expected=10**9)  # capped at 2^20 frames: 1.1 GB of arrays if they were written
    rows.add(0.0, None, None, np.nan, False, np.nan)
    rows.add(0.04, np.array([1.0, 0, 0, 0]), np.zeros((131, 2), np.float32), 0.2, True, 0.0)
    track = rows.track(ReferencePool(), {})
    assert resident_mb() - before < 100
    assert track.frames == 2 and track.has_face.tolist() == [False, True] and np.isnan(track.points[0]).all()
    assert np.isnan(track.transforms[0]).all() and track.points[1].max() == 0


def test_source_detail_returns_the_frames_fine_detail_only_where_the_drawing_agrees():
    rng = np.random.default_rng(0)
    size, scale = 32, 3.0  # a crop pixel spans 3 frame pixels: finer detail is the frame's to give
    comp = Compositor(size, CompositeOptions(detail=15.0))
    smooth = np.full((96, 96, 3), 120.0, np.float32)
    fine = rng.normal(0, 12, (96, 96, 1)).astype(np.float32).repeat(3, -1)  # stubble-like texture
    source = np.clip(smooth + fine, 0, 255).astype(np.uint8)
    drawing = smooth.copy()
    drawing[:, 48:] += 80  # the right half drawn differently (the mouth changed there)
    out = comp.with_source_detail(drawing, source, scale)
    left, right = (slice(None), slice(8, 40)), (slice(None), slice(56, 88))
    assert np.abs(out[left] - source[left]).mean() < 0.3 * np.abs(drawing[left] - source[left]).mean()
    np.testing.assert_allclose(out[right], drawing[right], atol=2.0)
    assert comp.with_source_detail(drawing, source, 1.0) is drawing  # a face no larger than the crop: unchanged


def test_source_detail_in_opencv_passes_is_the_formula_in_numpy():
    """The fused OpenCV arithmetic of ``with_source_detail`` against its formula written out in numpy."""
    import cv2

    rng = np.random.default_rng(3)
    comp = Compositor(32, CompositeOptions(detail=15.0))
    source = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    drawing = rng.uniform(0, 255, (60, 80, 3)).astype(np.float32)
    reference = rng.uniform(0, 255, (60, 80, 3)).astype(np.float32)
    o = comp.options

    def blur(x, sigma):
        return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma)

    def agreement(a, b):
        return np.exp(-np.abs(a - b).mean(-1, keepdims=True) / o.detail)

    for fpc in (1.6, 3.0, 5.0):
        src = source.astype(np.float32)
        agree = agreement(blur(drawing, fpc), blur(src, fpc))
        own = agree * (src - blur(src, fpc))
        ramp = min((fpc - o.reference_from) / (o.reference_full - o.reference_from), 1.0)
        expected = drawing + own
        if ramp > 0:
            weight = (1 - agree) * agreement(blur(drawing, fpc), blur(reference, fpc)) * ramp
            fine = weight * (reference - blur(reference, o.reference_band * fpc))
            expected = drawing + (own + fine) * (agree + weight) / np.sqrt(agree**2 + weight**2 + 1e-12)
        got = comp.with_source_detail(drawing, source, fpc, reference)
        np.testing.assert_allclose(got, expected, atol=2e-3)


def test_the_phase_clock_splits_wall_and_cpu_time_into_laps(monkeypatch):
    from dubber.pipeline import phase_clock

    ticks = iter([(0.0, 0.0), (1.0, 0.5), (3.0, 4.5), (3.5, 5.0)])  # (wall, cpu) at start and at each lap
    now = {"wall": 0.0, "cpu": 0.0}

    def advance():
        now["wall"], now["cpu"] = next(ticks)

    monkeypatch.setattr(phase_clock.time, "perf_counter", lambda: now["wall"])
    monkeypatch.setattr(phase_clock, "cpu_seconds", lambda: now["cpu"])
    advance()
    clock = phase_clock.PhaseClock()
    for name in ("audio", "dub", "audio"):
        advance()
        clock.lap(name)
    report = phase_clock.phase_report(clock.phases)
    assert report == {"audio": {"seconds": 1.5, "cores": 0.67}, "dub": {"seconds": 2.0, "cores": 2.0}}
