"""What a dataset looks like, in the numbers that decide what a model can learn from it.

The same measurements on the real footage and on the synthetic `studio` data are what tie the
two together (`python -m lab4 data-stats ROOT` prints them for any dataset in the Lab 4 layout):

- label faintness: the share of label pixels that differ from white by more than 0.1 and 0.3
  (mean over the channels, 0-1 scale), and the mean difference over the first group;
- the performer: the share of frame pixels that differ from the empty studio (the per-pixel
  median over the training frames, which a fixed camera makes the background) by more than
  0.15, and the number of rows the performer spans;
- motion: the PSNR between consecutive frames;
- the trivial baseline: PSNR of repeating the first frame over a rollout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Real footage of the Lab 4 kind at 64 x 32 (one performer, one studio, labels on white).
REAL_FOOTAGE = {
    "label_faint_share": 0.03,       # label pixels more than 0.1 from white
    "label_strong_share": 0.001,     # more than 0.3
    "label_faint_mean": 0.16,        # mean difference over the faint ones
    "foreground_share": 0.06,
    "foreground_rows": 26,
    "consecutive_psnr": (42.0, 43.0),
    "first_frame_psnr": 24.0,
}
FOREGROUND_THRESHOLD = 0.15


@dataclass
class FootageStats:
    label_faint_share: float
    label_strong_share: float
    label_faint_mean: float
    label_on_white: bool
    foreground_share: float
    foreground_rows: float
    consecutive_psnr: float
    first_frame_psnr: float

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def _as_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) or (N, 3, H, W) to float (N, H, W, 3) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    return images.astype(np.float32) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR (data range 1) of float frames (N, H, W, 3)."""
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))


def label_faintness(labels: np.ndarray) -> tuple[float, float, float, bool]:
    """(share > 0.1, share > 0.3, mean over those > 0.1, drawn on white) of label images."""
    x = _as_float(labels)
    on_white = float(np.median(x)) > 0.5
    difference = (1.0 - x if on_white else x).mean(axis=-1)
    faint = difference > 0.1
    mean = float(difference[faint].mean()) if faint.any() else 0.0
    return float(faint.mean()), float((difference > 0.3).mean()), mean, on_white


def performer(frames: np.ndarray, background: np.ndarray) -> tuple[float, float]:
    """(share of pixels, mean rows spanned) of what differs from `background` by > 0.15, both
    float (N, H, W, 3) and (H, W, 3) in [0, 1]."""
    mask = np.abs(frames - background[None]).mean(axis=-1) > FOREGROUND_THRESHOLD
    rows = mask.any(axis=2)
    spans = [int(np.ptp(np.flatnonzero(r))) + 1 if r.any() else 0 for r in rows]
    return float(mask.mean()), float(np.mean(spans))


def measure(train_frames: np.ndarray, val_frames: np.ndarray, labels: np.ndarray) -> FootageStats:
    """The statistics above: the background from `train_frames`, motion and baseline on the
    `val_frames` video, faintness on `labels`."""
    background = np.median(_as_float(train_frames), axis=0)
    val = _as_float(val_frames)
    faint, strong, mean, on_white = label_faintness(labels)
    share, rows = performer(val, background)
    consecutive = float(np.mean(psnr(val[1:], val[:-1])))
    first = float(np.mean(psnr(val[1:], np.broadcast_to(val[:1], val[1:].shape))))
    return FootageStats(faint, strong, mean, on_white, share, rows, consecutive, first)


def format_stats(stats: FootageStats) -> str:
    lo, hi = REAL_FOOTAGE["consecutive_psnr"]
    rows = [
        ("label pixels > 0.1 from " + ("white" if stats.label_on_white else "black"),
         f"{stats.label_faint_share:.1%}", f"{REAL_FOOTAGE['label_faint_share']:.0%} (on white)"),
        ("label pixels > 0.3", f"{stats.label_strong_share:.2%}", f"{REAL_FOOTAGE['label_strong_share']:.1%}"),
        ("mean difference of those > 0.1", f"{stats.label_faint_mean:.2f}", f"{REAL_FOOTAGE['label_faint_mean']:.2f}"),
        ("performer's share of the frame", f"{stats.foreground_share:.1%}", f"{REAL_FOOTAGE['foreground_share']:.0%}"),
        ("rows the performer spans", f"{stats.foreground_rows:.1f}", f"{REAL_FOOTAGE['foreground_rows']}"),
        ("consecutive-frame PSNR", f"{stats.consecutive_psnr:.1f} dB", f"{lo:.0f}-{hi:.0f} dB"),
        ("repeat-first-frame PSNR (val)", f"{stats.first_frame_psnr:.1f} dB", f"about {REAL_FOOTAGE['first_frame_psnr']:.0f} dB"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  {'this data':>10}  real footage"]
    lines += [f"{name:{width}}  {value:>10}  {real}" for name, value, real in rows]
    return "\n".join(lines)
