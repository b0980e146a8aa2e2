"""Reference lip and jaw shapes carried to each frame's head pose by the affine map between their upper faces.

The crops are aligned on rigid points with a similarity transform, so what is left of head motion in crop
coordinates is mostly out-of-plane turning and nodding: it foreshortens the face, which an affine map of the upper
face captures to first order. Fitting that map from a reference frame's 74 pose points to the current frame's and
applying it to the reference's lip and jaw points places them where the reference mouth would sit under the current
pose. Geometry the completer would otherwise have to learn from a few dozen faces (docs/LANDMARKS.md, "Fifth
session": on unseen speakers this warp alone, with no audio, is 0.80 x the static baseline's error).
"""

from __future__ import annotations

import sys

import torch

# Added to the 3 x 3 normal matrix so that a degenerate point set (all points equal, as in a zero-filled input)
# cannot make the solve fail; far below the spread of real pose points (~1e-2 in unit crop coordinates).
_RIDGE = 1e-6


def warp_references(refs_pose: torch.Tensor, refs_content: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """The mean over references of each reference's content carried to each frame's pose.

    ``refs_pose`` (B, R, P, 2) and ``refs_content`` (B, R, C, 2): the references' pose and lip/jaw points; ``pose``
    (B, T, P, 2): the frames'. Returns (B, T, C, 2): for every frame, the mean over the R references of their
    content mapped by the least-squares affine map from their pose points to the frame's.
    """
    dtype = refs_pose.dtype
    refs_pose, refs_content, pose = refs_pose.float(), refs_content.float(), pose.float()
    # Centring conditions the normal equations; the same centre for source and target keeps the map's meaning.
    centre = refs_pose.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1, 2)
    src = torch.cat([refs_pose - centre, torch.ones_like(refs_pose[..., :1])], dim=-1)  # (B, R, P, 3)
    normal = src.transpose(-1, -2) @ src + _RIDGE * torch.eye(3, device=src.device)
    solve = _solve3(normal, src.transpose(-1, -2))  # (B, R, 3, P): least squares for any target
    maps = torch.einsum("brkp,btpd->brtkd", solve, pose - centre)  # (B, R, T, 3, 2)
    content = torch.cat([refs_content - centre, torch.ones_like(refs_content[..., :1])], dim=-1)  # (B, R, C, 3)
    warped = torch.einsum("brck,brtkd->btcd", content, maps) / refs_pose.shape[1]
    return (warped + centre).to(dtype)


def _solve3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.solve`` for (..., 3, 3) systems; in an ONNX export (which has no solve) the inverse by
    cofactors, exact to float32 rounding for these well-conditioned normal matrices. An export has imported
    ``torch.onnx``; asking it otherwise would import it (0.2 s, in the middle of a dub's plan)."""
    if "torch.onnx" not in sys.modules or not torch.onnx.is_in_onnx_export():
        return torch.linalg.solve(a, b)
    rows = [a[..., i, :] for i in range(3)]
    cof = torch.stack([torch.linalg.cross(rows[(j + 1) % 3], rows[(j + 2) % 3]) for j in range(3)], dim=-1)
    det = (rows[0] * cof[..., :, 0]).sum(-1)[..., None, None]
    return (cof / det) @ b
