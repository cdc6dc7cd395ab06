"""The Kaggle submission format of Lab 4: writing submission.csv and reading it back, checked
(lab4.scoring scores it the way Kaggle does).

submission.csv has one row per frame, sequence-major (row id = sequence * 630 + frame, the
given first frame included): a column ``id`` (0..3149) and then columns "0".."6143", the
frame flattened in C,H,W order as round(prediction * 255) integers in 0..255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lab4.data.layout import FRAME_H, FRAME_W
from lab4.io import atomic_path

NUM_SEQUENCES = 5
FRAMES_PER_SEQUENCE = 630
FRAME_SHAPE = (3, FRAME_H, FRAME_W)

# Rows are formatted this many at a time, which bounds the formatter's temporary memory.
_ROWS_PER_CHUNK = 256


class SubmissionError(ValueError):
    """A submission (or the predictions meant for one) does not have the expected format."""


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


def check_video_shape(array: np.ndarray, what: str) -> None:
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
    check_video_shape(predictions, "predictions")
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
