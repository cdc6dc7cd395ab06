"""Kaggle's score of Lab 4, computed the way Kaggle computes it, with the repeat-first-frame
baseline and a table of both.

Kaggle scores per-frame PSNR at data range 255 over frames 1..600 of every sequence; the
public score averages sequences 0-2, the private score sequences 3-4. Beside it, and over the
same frames, the score reports mean per-frame SSIM (lab4.metrics.ssim_per_frame on the uint8
frames / 255), which Kaggle does not compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab4.metrics import SSIM_SIGMA, SSIM_WINDOW, ssim_per_frame
from lab4.submission import NUM_SEQUENCES, SubmissionError, check_video_shape, read_submission

SCORED_FRAMES = range(1, 601)
PUBLIC = (0, 1, 2)
PRIVATE = (3, 4)

# PSNR is infinite for a perfect frame; Kaggle needs a finite mean, and 100 dB is far above
# anything a model reaches (an error of one grey level on one pixel of a frame is ~86 dB).
PSNR_CAP_DB = 100.0


@dataclass
class Score:
    """Mean per-frame PSNR in dB (Kaggle's score) and mean per-frame SSIM over the scored frames.

    The SSIM fields are NaN for frames smaller than SSIM's 11x11 window (only tiny test
    frames; Kaggle's are 32x64).
    """

    public: float  # PSNR, sequences 0-2
    private: float  # PSNR, sequences 3-4 (NaN when fewer than 4 sequences are scored)
    overall: float  # PSNR, all sequences
    per_sequence: list[float]  # PSNR
    ssim_public: float
    ssim_private: float
    ssim_overall: float
    ssim_per_sequence: list[float]


def _require_uint8(array: np.ndarray, what: str) -> None:
    if array.dtype != np.uint8:
        raise SubmissionError(
            f"{what} have dtype {array.dtype}; expected uint8 in 0..255 (convert floats in [0, 1] with to_uint8)"
        )


def _frame_pair(pred_u8: np.ndarray, truth_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as arrays, checked to be uint8 of one shape ending in (3, H, W)."""
    pred_u8, truth_u8 = np.asarray(pred_u8), np.asarray(truth_u8)
    _require_uint8(pred_u8, "predictions")
    _require_uint8(truth_u8, "ground-truth frames")
    if pred_u8.shape != truth_u8.shape or pred_u8.ndim < 3:
        raise SubmissionError(
            f"predictions have shape {pred_u8.shape} but ground truth {truth_u8.shape}; expected equal shapes "
            "ending in (3, H, W)"
        )
    return pred_u8, truth_u8


def psnr_255(pred_u8: np.ndarray, truth_u8: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB at data range 255, over the last three axes (C, H, W).

    A frame predicted exactly (MSE 0) scores PSNR_CAP_DB = 100 dB instead of infinity.
    """
    pred_u8, truth_u8 = _frame_pair(pred_u8, truth_u8)
    error = pred_u8.astype(np.float64) - truth_u8.astype(np.float64)
    mse = np.mean(error * error, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


def ssim_255(pred_u8: np.ndarray, truth_u8: np.ndarray) -> np.ndarray:
    """Per-frame SSIM of uint8 frames over the last three axes (C, H, W), any leading axes.

    lab4.metrics.ssim_per_frame on the frames / 255 (data range 1), all frames in one call
    (it bounds its own memory), on the CPU. NaN for frames smaller than the 11x11 window.
    """
    pred_u8, truth_u8 = _frame_pair(pred_u8, truth_u8)
    if truth_u8.size == 0 or min(truth_u8.shape[-2:]) < SSIM_WINDOW:
        return np.full(truth_u8.shape[:-3], math.nan)  # no frames, or frames too small for SSIM
    with torch.inference_mode():
        # astype copies into a writable float array, so torch never shares a read-only buffer.
        pred = torch.from_numpy(pred_u8.astype(np.float32)).div_(255.0)
        truth = torch.from_numpy(truth_u8.astype(np.float32)).div_(255.0)
        return ssim_per_frame(pred, truth).numpy().astype(np.float64)


def _check_truth(truth_u8: np.ndarray, frames: range = SCORED_FRAMES) -> None:
    _require_uint8(truth_u8, "ground-truth frames")
    check_video_shape(truth_u8, "ground-truth frames")
    needed = frames.stop
    if truth_u8.shape[1] < needed:
        raise SubmissionError(
            f"ground truth has {truth_u8.shape[1]} frames per sequence; scoring needs at least {needed} "
            f"(frames {frames.start}..{frames.stop - 1} are scored)"
        )
    if truth_u8.shape[0] > NUM_SEQUENCES:
        raise SubmissionError(f"ground truth has {truth_u8.shape[0]} sequences; expected at most {NUM_SEQUENCES}")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def scored_frames_for(num_frames: int) -> range:
    """Kaggle's frames 1..600, or 1..T-1 for a shorter (synthetic, test-size) sequence."""
    return range(SCORED_FRAMES.start, min(SCORED_FRAMES.stop, num_frames))


def _means_by_split(frame_values: np.ndarray) -> tuple[float, float, float, list[float]]:
    """Means of a per-frame table [S, frames] over public, private, all sequences, and each sequence."""
    present = range(len(frame_values))
    public = [s for s in PUBLIC if s in present]
    private = [s for s in PRIVATE if s in present]
    per_sequence = [float(v) for v in frame_values.mean(axis=1)]
    return _mean(frame_values[public]), _mean(frame_values[private]), _mean(frame_values), per_sequence


def score(pred_u8: np.ndarray, truth_u8: np.ndarray, frames: range = SCORED_FRAMES) -> Score:
    """Kaggle's score: mean per-frame PSNR over frames 1..600, public (0-2) / private (3-4),
    and mean per-frame SSIM over the same frames and sequences.

    Fewer than five sequences are accepted (e.g. synthetic data): public then covers those
    of 0-2 that are present, and private is NaN when no sequence 3 or 4 exists. `frames`
    picks other scored frames (only for short synthetic sequences; Kaggle's are 1..600).
    """
    pred_u8, truth_u8 = np.asarray(pred_u8), np.asarray(truth_u8)
    _check_truth(truth_u8, frames)
    _require_uint8(pred_u8, "predictions")
    if pred_u8.shape != truth_u8.shape:
        raise SubmissionError(
            f"predictions have shape {pred_u8.shape} but ground truth {truth_u8.shape}; expected equal shapes"
        )
    scored = slice(frames.start, frames.stop)
    public, private, overall, per_sequence = _means_by_split(psnr_255(pred_u8[:, scored], truth_u8[:, scored]))
    ssim_public, ssim_private, ssim_overall, ssim_per_sequence = _means_by_split(
        ssim_255(pred_u8[:, scored], truth_u8[:, scored])
    )
    return Score(
        public=public,
        private=private,
        overall=overall,
        per_sequence=per_sequence,
        ssim_public=ssim_public,
        ssim_private=ssim_private,
        ssim_overall=ssim_overall,
        ssim_per_sequence=ssim_per_sequence,
    )


def baseline_predictions(first_frames_u8: np.ndarray, num_frames: int) -> np.ndarray:
    """The trivial baseline: the given first frame repeated for every frame, uint8 [S, T, 3, H, W]."""
    first_frames_u8 = np.asarray(first_frames_u8)
    if first_frames_u8.ndim != 4:
        raise SubmissionError(
            f"first frames have shape {first_frames_u8.shape}; expected [sequences, 3, H, W]"
        )
    return np.repeat(first_frames_u8[:, None], num_frames, axis=1)


def score_submission(submission: Path, truth: np.ndarray) -> tuple[Score, Score]:
    """Score a submission.csv against ground truth [S, T, 3, H, W] uint8.

    Returns (the submission's score, the repeat-first-frame baseline's score), the baseline
    built from truth[:, 0] (the first frame that is given to the model).
    """
    truth = np.asarray(truth)
    _check_truth(truth)
    num_sequences, num_frames = truth.shape[:2]
    predictions = read_submission(submission, num_sequences, num_frames, truth.shape[2:])
    baseline = baseline_predictions(truth[:, 0], num_frames)
    return score(predictions, truth), score(baseline, truth)


def _number(value: float, decimals: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{decimals}f}"


_COLUMN_WIDTH = 8
_SPLITS = ("public", "private", "overall")


def _group(values: tuple[float, float, float], decimals: int) -> str:
    return "  ".join(f"{_number(v, decimals):>{_COLUMN_WIDTH}}" for v in values)


def format_score_table(model: Score, baseline: Score, frames: range = SCORED_FRAMES) -> str:
    """A small plain-text table of both scores: PSNR in dB, and SSIM beside it."""
    rows = [("model", model), ("repeat-first-frame baseline", baseline)]
    label_width = max(len(name) for name, _ in rows)
    group_width = 3 * _COLUMN_WIDTH + 2 * 2
    lines = [
        f"{'':<{label_width}}  {'PSNR (dB)':^{group_width}}    {'SSIM':^{group_width}}".rstrip(),
        f"{'':<{label_width}}  " + "  ".join(f"{s:>{_COLUMN_WIDTH}}" for s in _SPLITS) + "    "
        + "  ".join(f"{s:>{_COLUMN_WIDTH}}" for s in _SPLITS),
    ]
    for name, result in rows:
        psnr = (result.public, result.private, result.overall)
        ssim = (result.ssim_public, result.ssim_private, result.ssim_overall)
        lines.append(f"{name:<{label_width}}  {_group(psnr, 2)}    {_group(ssim, 3)}")
    lines.append(
        f"Mean per-frame PSNR in dB (data range 255) and SSIM ({SSIM_WINDOW}x{SSIM_WINDOW} Gaussian window, "
        f"sigma {SSIM_SIGMA}, on the frames / 255)\nover frames {frames.start}-{frames.stop - 1} of each "
        "sequence; public = sequences 0-2, private = sequences 3-4."
    )
    if math.isnan(model.ssim_overall) and not math.isnan(model.overall):
        lines.append(f"SSIM n/a: frames smaller than its {SSIM_WINDOW}x{SSIM_WINDOW} window.")
    return "\n".join(lines)
