"""The Kaggle submission format of Lab 4, and a score computed the way Kaggle computes it.

submission.csv has one row per frame, sequence-major (row id = sequence * 630 + frame, the
given first frame included): a column ``id`` (0..3149) and then columns "0".."6143", the
frame flattened in C,H,W order as round(prediction * 255) integers in 0..255.

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
import pandas as pd
import torch

from lab4.io import atomic_path
from lab4.metrics import SSIM_SIGMA, SSIM_WINDOW, ssim_per_frame

NUM_SEQUENCES = 5
FRAMES_PER_SEQUENCE = 630
FRAME_SHAPE = (3, 32, 64)
SCORED_FRAMES = range(1, 601)
PUBLIC = (0, 1, 2)
PRIVATE = (3, 4)

# PSNR is infinite for a perfect frame; Kaggle needs a finite mean, and 100 dB is far above
# anything a model reaches (an error of one grey level on one pixel of a frame is ~86 dB).
PSNR_CAP_DB = 100.0

# Rows are formatted this many at a time, which bounds the formatter's temporary memory.
_ROWS_PER_CHUNK = 256


class SubmissionError(ValueError):
    """A submission (or the predictions meant for one) does not have the expected format."""


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


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def to_uint8(predictions: np.ndarray) -> np.ndarray:
    """Float predictions in [0, 1] as uint8 round(x * 255), clipped; uint8 passes through."""
    predictions = np.asarray(predictions)
    if predictions.dtype == np.uint8:
        return predictions
    if not np.issubdtype(predictions.dtype, np.floating):
        raise SubmissionError(
            f"predictions have dtype {predictions.dtype}; expected floats in [0, 1] or uint8 in 0..255"
        )
    if np.isnan(predictions).any():
        raise SubmissionError("predictions contain NaN; expected floats in [0, 1]")
    return np.rint(np.clip(predictions, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_video_shape(array: np.ndarray, what: str) -> None:
    if array.ndim != 5:
        raise SubmissionError(
            f"{what} have shape {tuple(array.shape)}; expected 5 axes [sequences, frames, 3, H, W] "
            f"({NUM_SEQUENCES}, {FRAMES_PER_SEQUENCE}, {', '.join(map(str, FRAME_SHAPE))}) for Kaggle"
        )


def _integer_tokens(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Text of 0..count-1 each followed by a comma, as a byte table [count, width] and lengths."""
    texts = [f"{i}," for i in range(count)]
    width = max(len(t) for t in texts)
    table = np.zeros((count, width), dtype=np.uint8)
    for i, text in enumerate(texts):
        table[i, : len(text)] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return table, np.array([len(t) for t in texts], dtype=np.int64)


def _format_rows(rows: np.ndarray, table: np.ndarray, lengths: np.ndarray) -> bytes:
    """CSV text of a non-negative integer matrix, built with numpy instead of one str() per cell.

    Every value becomes its token "<digits>," from the table; tokens are laid end to end, and
    each row's last comma becomes the newline.
    """
    flat = rows.reshape(-1)
    token_lengths = lengths[flat]
    ends = np.cumsum(token_lengths)
    starts = ends - token_lengths
    text = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(table.shape[1]):
        has_char = token_lengths > k
        text[starts[has_char] + k] = table[flat[has_char], k]
    text[ends[rows.shape[1] - 1 :: rows.shape[1]] - 1] = ord("\n")
    return text.tobytes()


def write_submission(predictions: np.ndarray, path: Path) -> None:
    """Write predictions [S, T, 3, H, W] (floats in [0, 1] or uint8) as a Kaggle submission.csv.

    The file is written to a temporary file beside `path` and renamed into place, so a
    reader never sees half a submission. The parent folder is created if needed.
    """
    path = Path(path)
    predictions = np.asarray(predictions)
    _check_video_shape(predictions, "predictions")
    pixels = to_uint8(predictions)
    s, t = pixels.shape[:2]
    per_frame = int(np.prod(pixels.shape[2:]))
    frames = pixels.reshape(s * t, per_frame)
    table, lengths = _integer_tokens(max(256, s * t))
    header = ",".join(["id", *map(str, range(per_frame))]) + "\n"

    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as tmp:
        tmp.write(header.encode("ascii"))
        for first in range(0, s * t, _ROWS_PER_CHUNK):
            chunk = frames[first : first + _ROWS_PER_CHUNK]
            ids = np.arange(first, first + len(chunk), dtype=np.int64)[:, None]
            tmp.write(_format_rows(np.hstack([ids, chunk.astype(np.int64)]), table, lengths))


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def _check_header(path: Path, pixels_per_frame: int) -> None:
    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        header = file.readline().rstrip("\r\n")
    if not header:
        raise SubmissionError(f"{path}: the file is empty; expected a header line 'id,0,1,...,{pixels_per_frame - 1}'")
    columns = header.split(",")
    expected = ["id", *map(str, range(pixels_per_frame))]
    if len(columns) != len(expected):
        raise SubmissionError(
            f"{path}: header has {len(columns)} columns; expected {len(expected)}: "
            f"id + {pixels_per_frame} pixel columns 0..{pixels_per_frame - 1}"
        )
    for position, (found, wanted) in enumerate(zip(columns, expected)):
        if found.strip().strip('"') != wanted:
            raise SubmissionError(
                f"{path}: header column {position + 1} is {found!r}; expected {wanted!r} "
                f"(the header must be id,0,1,...,{pixels_per_frame - 1})"
            )


def _first_bad_cell(bad: np.ndarray) -> tuple[int, int]:
    row, column = np.argwhere(bad)[0]
    return int(row), int(column)


def _cell_name(path: Path, row: int, column: int) -> str:
    # Row numbers are 0-based data rows (= the expected id); line numbers count the header.
    column_name = "id" if column == 0 else repr(str(column - 1))
    return f"{path}: row {row} (line {row + 2}), column {column_name}"


def _parse_values(path: Path, table: pd.DataFrame) -> np.ndarray:
    """The table as int64, or a SubmissionError naming the first cell that is not an integer."""
    if all(pd.api.types.is_integer_dtype(dtype) for dtype in table.dtypes):
        return table.to_numpy(dtype=np.int64)
    numbers = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    not_integer = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if not_integer.any():
        row, column = _first_bad_cell(not_integer)
        raw = table.iat[row, column]
        found = "an empty cell" if pd.isna(raw) else f"{raw!r}"
        raise SubmissionError(f"{_cell_name(path, row, column)}: found {found}; expected an integer")
    return numbers.astype(np.int64)


def read_submission(
    path: Path,
    num_sequences: int = NUM_SEQUENCES,
    frames_per_sequence: int = FRAMES_PER_SEQUENCE,
    frame_shape: tuple[int, int, int] = FRAME_SHAPE,
) -> np.ndarray:
    """Read a submission.csv back as uint8 [S, T, 3, H, W], checking every part of the format."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: submission file not found; expected a CSV written by write_submission")
    pixels_per_frame = int(np.prod(frame_shape))
    rows_expected = num_sequences * frames_per_sequence
    _check_header(path, pixels_per_frame)

    try:
        table = pd.read_csv(path, header=0, engine="c", low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise SubmissionError(
            f"{path}: not a well-formed CSV ({error}); expected {pixels_per_frame + 1} comma-separated values per row"
        ) from None
    if len(table) != rows_expected:
        raise SubmissionError(
            f"{path}: {len(table)} data rows; expected {rows_expected} "
            f"({num_sequences} sequences x {frames_per_sequence} frames, the first frame included)"
        )

    values = _parse_values(path, table)
    ids = values[:, 0]
    wrong_id = np.flatnonzero(ids != np.arange(rows_expected))
    if wrong_id.size:
        row = int(wrong_id[0])
        raise SubmissionError(
            f"{_cell_name(path, row, 0)}: id is {ids[row]}; expected ids 0..{rows_expected - 1} in order "
            "(id = sequence * frames_per_sequence + frame)"
        )
    pixels = values[:, 1:]
    out_of_range = (pixels < 0) | (pixels > 255)
    if out_of_range.any():
        row, column = _first_bad_cell(out_of_range)
        raise SubmissionError(
            f"{_cell_name(path, row, column + 1)}: value {pixels[row, column]} is outside 0..255; "
            "expected round(prediction * 255)"
        )
    return pixels.astype(np.uint8).reshape(num_sequences, frames_per_sequence, *frame_shape)


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------


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
    _check_video_shape(truth_u8, "ground-truth frames")
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
