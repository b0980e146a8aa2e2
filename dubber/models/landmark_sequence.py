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
) -> np.ndarray:
    """Lip and jaw points (N, 57, 2) for N frames.

    ``audio_windows`` (N, steps, features), ``pose`` (N, 74, 2) and one reference set ``refs`` (R, 131, 2) shared by
    every window. Every frame is predicted by each window that covers it (T of them at stride 1) and the predictions are
    averaged: the transformer's context moves smoothly, so there are no seams between windows.

    Windows start every ``stride`` frames, and the last ends at the last frame. ``offset`` and ``length``: these N
    frames are frames ``offset..offset+N-1`` of a sequence of ``length`` (N frames from 0 by default), and the windows
    are that sequence's, so a part predicted with T - 1 frames of context on each side equals the same frames of the
    whole (``dubber.pipeline.motion``); frames of the part that none of them covers come back NaN.
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
    total = len(audio)
    starts = window_starts(offset, total, total if length is None else length, t, stride)
    acc = np.zeros((total, N_CONTENT, 2), np.float64)
    hits = np.zeros(total, np.float64)
    refs_t = torch.as_tensor(refs, dtype=torch.float32, device=device)[None]
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
        if shared:
            rows = torch.as_tensor(idx, device=device)
            out = model.decode(
                ref_tok.expand(b, -1, -1), audio_tok[rows], pose_tok[rows], refs_t.expand(b, -1, -1, -1), pose_t[rows]
            )
        else:
            out = model(
                torch.as_tensor(audio[idx], dtype=torch.float32, device=device),
                torch.as_tensor(pos[idx], dtype=torch.float32, device=device),
                refs_t.expand(b, -1, -1, -1),
            )
        out_np = out.float().cpu().numpy()
        np.add.at(acc, idx.reshape(-1), out_np.reshape(-1, N_CONTENT, 2))
        np.add.at(hits, idx.reshape(-1), 1.0)
    model.train(was_training)
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
