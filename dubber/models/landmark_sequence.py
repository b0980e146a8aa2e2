"""Run the landmark completer over a whole sequence: overlapping T-frame windows, averaged where they overlap."""

from __future__ import annotations

import numpy as np
import torch

from dubber.face.landmarks import N_CONTENT
from dubber.models.landmark_completer import LandmarkCompleter


@torch.no_grad()
def predict_sequence(
    model: LandmarkCompleter,
    audio_windows: np.ndarray,
    pose: np.ndarray,
    refs: np.ndarray,
    *,
    stride: int = 1,
    batch_size: int = 256,
    offset: int = 0,
    length: int | None = None,
    frame_sets: np.ndarray | None = None,
) -> np.ndarray:
    """Lip and jaw points (N, 57, 2) for N frames.

    ``audio_windows`` (N, steps, features), ``pose`` (N, 74, 2) and one reference set ``refs`` (R, 131, 2) shared by
    every window. Every frame is predicted by each window that covers it (T of them at stride 1) and the predictions are
    averaged: the transformer's context moves smoothly, so there are no seams between windows.

    Windows start every ``stride`` frames, and the last ends at the last frame. ``offset`` and ``length``: these N
    frames are frames ``offset..offset+N-1`` of a sequence of ``length`` (N frames from 0 by default), and the windows
    are that sequence's, so a part predicted with T - 1 frames of context on each side equals the same frames of the
    whole (``dubber.pipeline.motion``); frames of the part that none of them covers come back NaN.

    With ``frame_sets`` (N,), ``refs`` is (K, R, 131, 2), a set per person, and each frame reads its own set: a
    window reads the set of its middle frame, and a frame averages the windows that read its set (those that do
    not, where none does: a window across a cut between two people).
    """
    n = len(audio_windows)
    if n == 0:
        return np.zeros((0, N_CONTENT, 2), np.float32)
    t = model.config.window
    stride = max(1, min(stride, t))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pad = max(0, t - n)
    audio = np.concatenate([audio_windows, np.repeat(audio_windows[-1:], pad, 0)]) if pad else audio_windows
    pos = np.concatenate([pose, np.repeat(pose[-1:], pad, 0)]) if pad else pose
    sets = None
    if frame_sets is not None:
        sets = np.concatenate([frame_sets, np.repeat(frame_sets[-1:], pad, 0)]) if pad else np.asarray(frame_sets)
    else:
        refs = np.asarray(refs)[None]
    total = len(audio)
    starts = window_starts(offset, total, total if length is None else length, t, stride)
    acc = np.zeros((total, N_CONTENT, 2), np.float64)
    hits = np.zeros(total, np.float64)
    own_acc, own_hits = (np.zeros_like(acc), np.zeros_like(hits)) if sets is not None else (None, None)
    refs_t = torch.as_tensor(refs, dtype=torch.float32, device=device)  # (K, R, 131, 2)
    pose_t = torch.as_tensor(pos, dtype=torch.float32, device=device)
    shared = isinstance(model, LandmarkCompleter)  # not an onnxruntime stand-in, which runs whole windows
    if shared:
        # Each frame's audio and pose tokens, and the references' tokens, once: the T windows covering a frame
        # share them (5 x fewer encoder passes at T = 5; the 15 references once per sequence, not per window).
        ref_tok = model.encode_references(refs_t)
        audio_tok, pose_tok = model.encode_frames(torch.as_tensor(audio, dtype=torch.float32, device=device), pose_t)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        idx = np.asarray(chunk)[:, None] + np.arange(t)[None]
        b = len(chunk)
        middle = None if sets is None else sets[idx[:, t // 2]]  # the set each window reads
        which = None if middle is None else torch.as_tensor(middle, device=device)
        window_refs = refs_t.expand(b, -1, -1, -1) if sets is None else refs_t[which]
        if shared:
            rows = torch.as_tensor(idx, device=device)
            window_tok = ref_tok.expand(b, -1, -1) if sets is None else ref_tok[which]
            out = model.decode(window_tok, audio_tok[rows], pose_tok[rows], window_refs, pose_t[rows])
        else:
            out = model(
                torch.as_tensor(audio[idx], dtype=torch.float32, device=device),
                torch.as_tensor(pos[idx], dtype=torch.float32, device=device),
                window_refs,
            )
        out_np = out.float().cpu().numpy()
        np.add.at(acc, idx.reshape(-1), out_np.reshape(-1, N_CONTENT, 2))
        np.add.at(hits, idx.reshape(-1), 1.0)
        if sets is not None:
            own = (sets[idx] == middle[:, None]).reshape(-1)
            np.add.at(own_acc, idx.reshape(-1)[own], out_np.reshape(-1, N_CONTENT, 2)[own])
            np.add.at(own_hits, idx.reshape(-1)[own], 1.0)
    model.train(was_training)
    if sets is not None:  # a frame's own person's windows, where any cover it
        acc, hits = np.where(own_hits[:, None, None] > 0, own_acc, acc), np.where(own_hits > 0, own_hits, hits)
    out = np.full_like(acc, np.nan)
    np.divide(acc, hits[:, None, None], out=out, where=hits[:, None, None] > 0)
    return out[:n].astype(np.float32)


def window_starts(offset: int, frames: int, length: int, window: int, stride: int) -> list[int]:
    """Where the T-frame windows of a ``length``-frame sequence that lie within frames ``offset..offset+frames-1``
    start, counted from ``offset``: every ``stride``-th frame from 0, and the last window's."""
    last = length - window
    grid = range(-(-offset // stride) * stride, offset + frames - window + 1, stride)
    starts = sorted({*grid, last} if offset <= last <= offset + frames - window else set(grid))
    return [g - offset for g in starts]
