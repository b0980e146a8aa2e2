"""PNG grids to look at while a renderer trains: truth | masked | generated | landmarks, one sample per row."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dubber.render.face_mask import lower_face_mask


def draw_points(image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: int = 1) -> np.ndarray:
    out = image.copy()
    size = image.shape[0]
    for x, y in np.asarray(points, np.float32).reshape(-1, 2):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (int(round(x * size)), int(round(y * size))), radius, colour, -1, cv2.LINE_AA)
    return out


def grid_rows(targets: np.ndarray, generated: np.ndarray, landmarks: np.ndarray, found=None) -> np.ndarray:
    """(rows * S, 4 * S, 3) uint8. The last column shows the conditioning landmarks (green) on the generated crop
    and, when given, the points the face backend found on it (red)."""
    size = targets.shape[1]
    mask = lower_face_mask(size)[..., None]
    rows = []
    for n in range(len(targets)):
        masked = (targets[n] * (1 - mask) + 96 * mask).astype(np.uint8)
        marks = draw_points(generated[n], landmarks[n], (0, 255, 0))
        if found is not None:
            marks = draw_points(marks, found[n], (255, 0, 0))
        rows.append(np.concatenate([targets[n], masked, generated[n], marks], axis=1))
    return np.concatenate(rows, axis=0)


def save_grid(path: Path, targets, generated, landmarks, found=None, scale: int = 2) -> Path:
    image = grid_rows(targets, generated, landmarks, found)
    if scale != 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: cannot write the PNG")
    tmp.replace(path)
    return path
