"""Training clips: which frames each clip of an epoch takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab4.config import CHOICES
from lab4.data.layout import read_synth_manifest
from lab4.data.load import VideoSplit

CLIP_MODES = CHOICES["clip_mode"]


def train_video_lengths(root: Path, num_frames: int) -> list[int]:
    """Lengths of the videos the train split concatenates, in frame order.

    The synthetic data's manifest records them; the real data's train split is footage of one
    dancer in one studio and counts as one video (as the template's chunks treat it).
    """
    lengths = (read_synth_manifest(root) or {}).get("train_video_lengths")
    if not isinstance(lengths, list) or sum(lengths) != num_frames or min(lengths, default=0) < 1:
        return [num_frames]
    return [int(n) for n in lengths]


def dataset_style(root: Path) -> str:
    """What a dataset is, for captions: "studio" or "variety" synthetic data (a manifest written
    before styles existed is variety data), else "not synthetic" (the real data, or another)."""
    manifest = read_synth_manifest(root)
    return str(manifest.get("style", "variety")) if manifest else "not synthetic"


class ClipSampler:
    """The frames of each training clip, clip_len of them.

    mode "chunks" reproduces the template: consecutive non-overlapping chunks
    (num_frames // clip_len of them; a partial tail is dropped). mode "random" draws the
    same number of clips per epoch, each at a random offset, so that every frame can start
    a clip over the epochs.
    """

    def __init__(self, num_frames: int, clip_len: int, mode: str = "chunks", shuffle: bool = True) -> None:
        if mode not in CLIP_MODES:
            raise ValueError(f"clip mode must be one of {CLIP_MODES} (got {mode!r})")
        if clip_len < 2 or clip_len > num_frames:
            raise ValueError(
                f"train_vi_len must be between 2 and the split size {num_frames} (got {clip_len}); "
                "a clip needs a previous frame and at least one frame to predict"
            )
        self.num_frames = num_frames
        self.clip_len = clip_len
        self.mode = mode
        self.shuffle = shuffle

    @property
    def num_clips(self) -> int:
        return self.num_frames // self.clip_len

    def clips_per_epoch(self, fraction: float = 1.0) -> int:
        """round(fraction * num_clips), at least one: the template's fast_train / partial options."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction (the template's partial / fast_partial) must be in (0, 1] (got {fraction})")
        return max(1, int(round(fraction * self.num_clips)))

    def __len__(self) -> int:
        return self.num_clips

    def starts(self, epoch: int, seed: int, fraction: float = 1.0, repeat: int = 0) -> np.ndarray:
        """int64 start indices for this epoch, deterministic in (seed, epoch, repeat).

        fraction < 1 keeps the first round(fraction * n) clips (at least one), like the
        template's fast_train / partial options. `repeat` numbers further passes over the
        data within one epoch (see `draw`).
        """
        keep = self.clips_per_epoch(fraction)
        rng = np.random.default_rng([seed, epoch] + ([repeat] if repeat else []))
        n = self.num_clips
        if self.mode == "chunks":
            starts = np.arange(n, dtype=np.int64) * self.clip_len
        else:
            starts = rng.integers(0, self.num_frames - self.clip_len + 1, size=n, dtype=np.int64)
            if not self.shuffle:
                starts.sort()  # "not shuffled" means in frame order, as in chunks mode
        if self.shuffle:
            starts = rng.permutation(starts)
        return starts[:keep]

    def clips(self, epoch: int, seed: int, fraction: float = 1.0, repeat: int = 0) -> np.ndarray:
        """int64 frame indices (clips, clip_len) for this epoch, deterministic in (seed, epoch, repeat)."""
        return self.starts(epoch, seed, fraction, repeat)[:, None] + np.arange(self.clip_len, dtype=np.int64)

    def draw(self, epoch: int, seed: int, count: int) -> np.ndarray:
        """Exactly `count` clips for this epoch: whole passes over the data (each drawn as
        `clips` draws one epoch), the last one cut short. A budget in updates takes its clips
        from here, so that it does the same work on a dataset of any size."""
        passes = [self.clips(epoch, seed, repeat=r) for r in range(-(-count // self.num_clips))]
        return np.concatenate(passes)[:count]


def gather_frames(split: VideoSplit, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames and labels at `index` (clips, clip_len), each uint8 [clips, clip_len, 3, H, W]."""
    index = np.asarray(index, dtype=np.int64)
    bad = index[(index < 0) | (index >= len(split))]
    if bad.size:
        raise ValueError(f"frame index {int(bad[0])} is out of range; expected 0..{len(split) - 1}")
    return split.frames[index], split.labels[index]
