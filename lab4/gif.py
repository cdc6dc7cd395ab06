"""Animated GIFs of rollouts, enlarged with nearest-neighbour scaling so pixels stay crisp."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from lab4.io import atomic_path


def side_by_side(panels: Sequence[np.ndarray], gap: int = 1) -> np.ndarray:
    """Panels of uint8 (T, 3, H, W) -> one uint8 (T, H, W', 3) strip per frame, with white gaps."""
    length, _, height, _ = panels[0].shape
    spacer = np.full((length, height, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, panel in enumerate(panels):
        if i:
            parts.append(spacer)
        parts.append(panel.transpose(0, 2, 3, 1))
    return np.concatenate(parts, axis=2)


def write_gif(path: Path, frames_hwc: np.ndarray, scale: int = 4, fps: int = 20) -> None:
    """frames_hwc: uint8 (T, H, W, 3)."""
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
              for f in frames_hwc]
    with atomic_path(Path(path)) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
