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


# Frames sampled across the video to choose the GIF's one palette from.
PALETTE_SAMPLES = 32


def write_gif(path: Path, frames_hwc: np.ndarray, scale: int = 4, fps: int = 20) -> None:
    """frames_hwc: uint8 (T, H, W, 3).

    One 256-colour palette for the whole GIF, chosen from frames sampled across it, and each frame
    mapped to it at its own size before the nearest-neighbour enlargement: choosing a palette per
    enlarged frame (what PIL does for RGB frames) took most of a test rollout's time.
    """
    sampled = frames_hwc[np.linspace(0, len(frames_hwc) - 1, min(PALETTE_SAMPLES, len(frames_hwc))).astype(int)]
    palette = Image.fromarray(np.concatenate(list(sampled), axis=0)).quantize(colors=256)
    size = (frames_hwc.shape[2] * scale, frames_hwc.shape[1] * scale)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE).resize(size, Image.NEAREST)
              for f in frames_hwc]
    with atomic_path(Path(path)) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
