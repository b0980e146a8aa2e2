"""The second pass's per-chunk work: the renderer's references, and redrawing the faces of a chunk of frames
(target landmarks, aligned crops, render, paste back)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from dubber.face.aligner import Similarity
from dubber.face.landmarks import JAW, N_POSE
from dubber.media.yuv_image import YuvImage
from dubber.models.reference_choice import mouth_shape_distance
from dubber.pipeline.analysis import YAW_STEP, VideoTrack
from dubber.pipeline.compositor import CompositeOptions, Compositor, ReferenceDetail
from dubber.pipeline.frame_regions import crop_face, paste_face
from dubber.pipeline.motion import MotionPlanner
from dubber.pipeline.options import DubOptions
from dubber.pipeline.person_references import LandmarkReferences
from dubber.pipeline.render_shift import (
    mouth_shift,
    shifted_crops,
    shifted_points,
    shifted_transform,
    unshifted_reads,
)
from dubber.pipeline.timeline import Timeline
from dubber.pipeline.torch_compositor import TorchCompositor
from dubber.render.face_mask import lower_face_mask
from dubber.render.hint_warp import thin_plate_read
from dubber.render.image_tensors import to_model_range, to_uint8

_JAW = slice(N_POSE, N_POSE + len(JAW))  # the model points' jaw contour, ear to ear
_COMPOSITOR_REACH = 8  # crop pixels above the renderer's mask (``paste_rows_from``)
# A pool frame turned YAW_STEP degrees further from the target than YAW_FREE costs this much mouth-shape distance
# (unit crop): within YAW_FREE the mouth alone chooses (the dev split's frontal clips: unchanged).
YAW_COST, YAW_FREE = 0.05, 10.0
# Added to the mouth-shape distance of a pool frame of another person than the target's (``identities.py``): any
# frame of the target's own comes first; with too few of them, the others follow.
OTHER_PERSON = 1e3
_TIMINGS_LOCK = threading.Lock()  # the stages of a pass run in several threads (dubber.pipeline.overlap)


def add_time(timings: dict[str, float], key: str, t0: float) -> None:
    """Add the seconds since ``t0`` to ``timings[key]``: a stage's busy time."""
    seconds = time.perf_counter() - t0
    with _TIMINGS_LOCK:
        timings[key] = timings.get(key, 0.0) + seconds


def add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    """Add ``counts`` into ``total`` (the drawing workers of a pass run in several threads)."""
    with _TIMINGS_LOCK:
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n


@dataclass
class PlannedFaces:
    """A chunk's faces to redraw and the landmarks to draw them on (``FaceRedrawer.plan``)."""

    todo: list[int]  # output frame indices
    targets: torch.Tensor  # (F, 131, 2) in the renderer's crop


def paste_rows_from(size: int) -> int:
    """The first row of an S x S crop from which a hint pasted alone reaches the frame: the renderer's mask (the
    hint shows only there) less the compositor's reach above it (its detail's blurs, 4 sigma of a crop pixel; the
    bilinear read of the spline; the region's margin of 2-3 frame pixels), with room to spare."""
    rows = np.flatnonzero(lower_face_mask(size).max(axis=1) > 0)
    return max(0, int(rows[0]) - _COMPOSITOR_REACH) if len(rows) else 0


@dataclass
class DrawnFaces:
    """A chunk's redrawn faces, waiting to be pasted into its frames."""

    todo: list[int]  # output frame indices
    rendered: np.ndarray  # (F, S, S, 3) uint8
    crops: np.ndarray  # (F, S, S, 3) uint8: what the renderer was given
    transforms: list[Similarity]
    targets: torch.Tensor  # (F, 131, 2) the landmarks drawn
    hints: torch.Tensor | None = None  # (F,) per frame the pool frame the renderer was hinted with
    reads: torch.Tensor | None = None  # (F, S, S, 2) where the crop on the target's landmarks reads its hint


@dataclass
class ReferenceSet:
    """What the models see of the speaker: the completer's landmark sets and the renderer's reference frames."""

    landmark_sets: LandmarkReferences  # for the completer: (R, 131, 2) over the mouth openings, or a set per person
    crops: torch.Tensor  # (K, 3, S, S) in [-1, 1]: closed, half-open, open ("spread")
    points: torch.Tensor  # (K, 131, 2)
    tokens: dict  # the renderer's encoding of ``crops``, computed once
    pool_crops: torch.Tensor  # (P, 3, S, S): one frame per mouth-opening and head-turn bin
    pool_points: torch.Tensor  # (P, 131, 2)
    pool_yaw: torch.Tensor  # (P,) degrees
    pool_tokens: dict | None = None  # the renderer's encoding of each pool frame, for per-frame references
    pool_details: list[np.ndarray | None] | None = None  # each pool frame at the face's resolution, if larger
    # The renderer's crop lies this far (unit crop) below the tracked one (``render_shift``): ``crops``, ``points``
    # and the pool are in the renderer's crop, ``landmark_sets`` and ``pool_details`` in the tracked one.
    shift: float = 0.0
    pool_identity: torch.Tensor | None = None  # (P,) who each pool frame shows (-1: not told)

    @classmethod
    def from_track(cls, track: VideoTrack, renderer, landmark_sets: int, *, per_frame: bool = True) -> ReferenceSet:
        """``per_frame``: also encode the pool once, for references chosen per frame (``nearest``)."""
        dy = mouth_shift(track.points, renderer.size)
        crops, points, _ = track.pool.choose(renderer.n_refs)
        crops_t, points_t = to_model_range(shifted_crops(crops, dy)), torch.from_numpy(shifted_points(points, dy))
        held = track.pool.held()
        pool_crops_t = to_model_range(shifted_crops(np.stack([e.crop for e in held]), dy))
        pool_points_t = torch.from_numpy(shifted_points(np.stack([e.points for e in held]), dy))
        pool_tokens = renderer.encode_reference_pool(pool_crops_t, pool_points_t) if per_frame else None
        return cls(
            track.references_by_person(landmark_sets),
            crops_t,
            points_t,
            renderer.encode_references(crops_t, points_t),
            pool_crops_t,
            pool_points_t,
            torch.tensor([e.yaw for e in held], dtype=torch.float32),
            pool_tokens,
            [e.detail for e in held],
            dy,
            torch.tensor([e.identity for e in held], dtype=torch.long),
        )

    def nearest_order(
        self,
        targets: torch.Tensor,
        count: int,
        yaw: torch.Tensor | None = None,
        identity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per frame, the indices of the ``count`` pool frames whose mouth shape is nearest the target's, nearest
        first: (B, K); of the target's own person first (``identity``, (B,): -1 where not told). The renderer takes
        the first as its hint.

        Shape (``mouth_shape_distance``), not position: distance over all lip and jaw points was ruled by where the
        jaw and the mouth sit in the crop, which follows the head's pose; on a speaker with small mouth motion the
        first reference's opening then followed the target's at 0.22 (0.45 by shape) (docs/DUBBING.md).
        """
        d = mouth_shape_distance(self.pool_points[None], targets)  # (B, P)
        if yaw is not None:  # the target's head turn: a pool frame turned otherwise folds under the hint's warp
            turned = ((self.pool_yaw[None] - yaw[:, None]).abs() - YAW_FREE).clamp_min(0.0)
            d = d + YAW_COST * turned / YAW_STEP
        if identity is not None and self.pool_identity is not None:
            other = (self.pool_identity[None] != identity[:, None]) & (identity[:, None] >= 0)
            d = d + OTHER_PERSON * other
        order = d.argsort(dim=1)[:, :count]
        if order.shape[1] < count:  # fewer bins than references: repeat the nearest
            order = torch.cat([order, order[:, :1].expand(-1, count - order.shape[1])], dim=1)
        return order

    def nearest(
        self, targets: torch.Tensor, count: int, yaw: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per frame, the ``count`` pool frames whose lips and jaw are nearest the target's: (B, K, ...)."""
        order = self.nearest_order(targets, count, yaw)
        return self.pool_crops[order], self.pool_points[order]


def compositor_for(device: torch.device, size: int, options: CompositeOptions) -> Compositor:
    """The crop's and the paste's pixel work where the models run: on a GPU in torch (``TorchCompositor``), else
    OpenCV's, which is several times the faster of the two on a CPU."""
    if torch.device(device).type == "cuda":
        return TorchCompositor(size, options, device)
    return Compositor(size, options)


class FaceRedrawer:
    """Redraws the faces of a chunk of output frames: ``plan`` (the target landmarks), ``render`` (the renderer),
    then ``paste`` (in place)."""

    def __init__(
        self,
        renderer,
        track: VideoTrack,
        timeline: Timeline,
        motion: MotionPlanner,
        refs: ReferenceSet,
        opts: DubOptions,
        timings: dict[str, float],
        counts: dict[str, int] | None = None,
        redrawn: np.ndarray | None = None,
    ) -> None:
        """``redrawn``: the source frames whose face is redrawn (default: every face, or ``--person``'s)."""
        self.renderer, self.track, self.timeline, self.motion, self.refs = renderer, track, timeline, motion, refs
        self.opts, self.timings = opts, timings
        self.counts = counts if counts is not None else {}  # "network": frames the renderer network drew
        composite = CompositeOptions(colour_match=opts.colour_match, detail=15.0 if opts.source_detail else 0.0)
        self.compositor = compositor_for(renderer.device, renderer.size, composite)
        self.paste_rows_from = paste_rows_from(renderer.size)
        self.identity = torch.from_numpy(track.identity())  # who each source frame shows
        if redrawn is None:
            redrawn = track.has_face if opts.person is None else track.person_frames(opts.person)
        self.redrawn = redrawn

    def plan(self, start: int, count: int) -> PlannedFaces | None:
        """The faces among output frames ``start..start+count`` and their target landmarks; None: no face. Called
        for the chunks in order (the completer's windows slide); ``render`` may then run for several at once."""
        timeline = self.timeline
        lead = timeline.lead_frames  # the source's own frames before the dub: not redrawn
        first, stop = max(start, lead), min(start + count, timeline.dub_end)
        todo = [i for i in range(first, stop) if self.redrawn[timeline.source_index(i)]]
        if not todo:
            return None
        t0 = time.perf_counter()
        planned = torch.from_numpy(self.motion.targets(first - lead, stop - lead)[np.asarray(todo) - first])
        add_time(self.timings, "landmarks", t0)
        return PlannedFaces(todo, shifted_points(planned, self.refs.shift))  # the renderer's crop, lower

    def render(self, images: list[np.ndarray | YuvImage], start: int, planned: PlannedFaces) -> DrawnFaces:
        """``planned``'s faces in the chunk ``images`` (output frames ``start..``) redrawn: aligned crops, each
        frame's references, the renderer."""
        timeline, opts, todo, targets = self.timeline, self.opts, planned.todo, planned.targets
        t0 = time.perf_counter()
        dy = self.refs.shift
        transforms = [shifted_transform(self.track.transform(timeline.source_index(i)), dy) for i in todo]
        comp = self.compositor
        crops = np.stack([crop_face(comp, images[i - start], tf) for i, tf in zip(todo, transforms, strict=True)])
        add_time(self.timings, "composite", t0)
        t0 = time.perf_counter()
        hints = reads = None
        if opts.references == "nearest":
            sources = [timeline.source_index(i) for i in todo]
            yaw = torch.from_numpy(np.nan_to_num(self.track.yaw[sources]))
            order = self.refs.nearest_order(targets, self.renderer.n_refs, yaw, self.identity[sources])
            hints = order[:, 0]
            if self.renderer.hint_warp:  # the hint warp's spline, computed once for the renderer and the compositor
                reads = self._hint_reads(hints, targets)
            ref_crops, ref_points = self.refs.pool_crops[order], self.refs.pool_points[order]
            if self.refs.pool_tokens is None:
                tokens = self.renderer.encode_references(ref_crops, ref_points)
            else:  # the pool was encoded once per video
                tokens = self.renderer.gather_references(self.refs.pool_tokens, order)
        else:
            ref_crops, ref_points, tokens = self.refs.crops, self.refs.points, self.refs.tokens
        counts: dict[str, int] = {}
        rendered = self.renderer(
            to_model_range(crops),
            targets,
            ref_crops,
            ref_points,
            reference_tokens=tokens,
            steps=opts.steps or self.renderer.default_steps,
            seed=opts.seed,
            guidance=opts.guidance,
            scheduler=opts.scheduler,
            blend=opts.reference_blend,
            # The first of each frame's references: the pool frame nearest its mouth and its head's turn.
            hint_index=None if hints is None else torch.zeros(len(todo), dtype=torch.long),
            hint_read=reads,
            counts=counts,
        )
        add_counts(self.counts, counts)
        drawn = DrawnFaces(todo, to_uint8(rendered), crops, transforms, targets, hints, reads)
        add_time(self.timings, "render", t0)
        return drawn

    def _hint_reads(self, hints: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(F, S, S, 2) the hint warp's spline from each hint's landmarks to the target's; on a frame the network
        will not draw (the reference blend pastes its warped hint alone) only the rows the paste and the
        compositor read, from ``paste_rows_from`` down (the spline is a fifth of the drawing workers' time)."""
        device, size = self.renderer.device, self.renderer.size
        source, target = self.refs.pool_points[hints].to(device), targets.to(device)
        draws = self.renderer.network_draws(source[:, None], target) if self.opts.reference_blend else None
        if draws is None or bool(draws.all()):
            return thin_plate_read(source, target, size)
        reads = torch.empty(len(target), size, size, 2, device=device)
        pasted = ~draws
        reads[pasted] = thin_plate_read(source[pasted], target[pasted], size, self.paste_rows_from)
        if bool(draws.any()):
            reads[draws] = thin_plate_read(source[draws], target[draws], size)
        return reads

    def reference_details(self, drawn: DrawnFaces) -> list[ReferenceDetail | None]:
        """Per drawn frame, its hint's detail crop and where the crop on the target's landmarks reads it (the hint
        warp's spline), or None: no detail crop, or a face too small for the compositor to use it."""
        details: list[ReferenceDetail | None] = [None] * len(drawn.todo)
        pool, options = self.refs.pool_details, self.compositor.options
        if drawn.hints is None or pool is None or options.detail <= 0:
            return details
        least = options.reference_from * self.renderer.size  # crop side in frame pixels
        hints = drawn.hints.tolist()
        ks = [k for k, h in enumerate(hints) if pool[h] is not None and drawn.transforms[k].scale > least]
        if not ks:
            return details
        if drawn.reads is not None:
            reads = drawn.reads[ks].cpu()
        else:
            reads = thin_plate_read(self.refs.pool_points[drawn.hints[ks]], drawn.targets[ks], self.renderer.size)
        for k, read in zip(ks, unshifted_reads(reads.numpy(), self.refs.shift), strict=True):
            details[k] = ReferenceDetail(pool[hints[k]], read)
        return details

    def paste(self, images: list[np.ndarray | YuvImage], start: int, drawn: DrawnFaces | None) -> int:
        """Paste ``drawn`` into the chunk's ``images`` (output frames ``start..``) in place; returns how many."""
        if drawn is None:
            return 0
        t0 = time.perf_counter()
        details = self.reference_details(drawn)
        for k, i in enumerate(drawn.todo):
            source_jaw = shifted_points(self.track.points[self.timeline.source_index(i), _JAW], self.refs.shift)
            jaws = np.stack([source_jaw, drawn.targets[k, _JAW].numpy()])
            paste_face(
                self.compositor,
                images[i - start],
                drawn.rendered[k],
                drawn.crops[k],
                drawn.transforms[k],
                details[k],
                jaws,
            )
        add_time(self.timings, "composite", t0)
        return len(drawn.todo)
