"""lab4.submission and lab4.scoring: the Kaggle CSV format, its checks, and the Kaggle-equivalent score."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lab4 import scoring
from lab4 import submission as sub
from lab4.metrics import ssim_per_frame
from lab4.submission import SubmissionError

SMALL = dict(num_sequences=2, frames_per_sequence=3, frame_shape=(3, 2, 4))  # 24 pixels per frame


def _small_video(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (2, 3, 3, 2, 4), dtype=np.uint8)


def _write_small(tmp_path: Path) -> Path:
    path = tmp_path / "submission.csv"
    sub.write_submission(_small_video(), path)
    return path


def _edit_cell(path: Path, line: int, column: int, text: str) -> None:
    """Replace one cell; line 0 is the header (so data row r is line r + 1), column 0 the id."""
    lines = path.read_text().splitlines()
    cells = lines[line].split(",")
    cells[column] = text
    lines[line] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------
# Writing and reading back
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 3, 1, 1), (2, 3, 3, 2, 4), (3, 5, 3, 4, 8)])
def test_round_trip_is_exact(tmp_path, shape):
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, shape, dtype=np.uint8)
    video.reshape(-1)[:2] = (0, 255)  # the extremes
    path = tmp_path / "out" / "submission.csv"  # the folder is created
    sub.write_submission(video, path)
    back = sub.read_submission(path, shape[0], shape[1], shape[2:])
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, video)


def test_float_predictions_are_rounded_to_round_x_times_255(tmp_path):
    values = np.array([0.0, 1.0, 0.5, 1.5 / 255, 2.5 / 255, -0.2, 1.7, 100.49 / 255], dtype=np.float64)
    expected = np.array([0, 255, 128, 2, 2, 0, 255, 100], dtype=np.uint8)  # round half to even, clipped
    np.testing.assert_array_equal(sub.to_uint8(values), expected)

    video = np.linspace(0, 1, 2 * 3 * 24).reshape(2, 3, 3, 2, 4).astype(np.float32)
    path = tmp_path / "submission.csv"
    sub.write_submission(video, path)
    np.testing.assert_array_equal(sub.read_submission(path, **SMALL), sub.to_uint8(video))


def test_to_uint8_passes_uint8_through_and_rejects_nan():
    u8 = np.arange(10, dtype=np.uint8)
    assert sub.to_uint8(u8) is u8
    with pytest.raises(SubmissionError, match="NaN"):
        sub.to_uint8(np.array([0.5, np.nan]))
    with pytest.raises(SubmissionError, match="dtype int64"):
        sub.to_uint8(np.arange(3))


def test_write_rejects_a_wrong_number_of_axes(tmp_path):
    with pytest.raises(SubmissionError, match=r"shape \(630, 3, 32, 64\); expected 5 axes"):
        sub.write_submission(np.zeros((630, 3, 32, 64), np.uint8), tmp_path / "submission.csv")


def test_full_size_submission_has_the_kaggle_layout(tmp_path):
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, (5, 630, 3, 32, 64), dtype=np.uint8)
    path = tmp_path / "submission.csv"

    sub.write_submission(video, path)
    assert not list(tmp_path.glob("*.tmp"))

    with open(path) as file:
        header = file.readline().rstrip("\n").split(",")
        first_row = file.readline().rstrip("\n").split(",")
        rows = 1 + sum(1 for _ in file)
    assert header == ["id"] + [str(i) for i in range(6144)]
    assert rows == 3150
    assert first_row[0] == "0" and [int(v) for v in first_row[1:]] == video[0, 0].reshape(-1).tolist()

    back = sub.read_submission(path)
    np.testing.assert_array_equal(back, video)
    # Row id = sequence * 630 + frame, frames flattened in C,H,W order.
    np.testing.assert_array_equal(back[3, 17], video[3, 17])


# ---------------------------------------------------------------------------------------
# Malformed submissions: one clear error each, naming the file and what is wrong
# ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(SubmissionError, match="submission file not found") as error:
        sub.read_submission(path)
    assert str(path) in str(error.value)


def test_empty_file(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("")
    with pytest.raises(SubmissionError, match="the file is empty"):
        sub.read_submission(path)


def test_wrong_column_count(tmp_path):
    path = tmp_path / "submission.csv"
    sub.write_submission(_small_video(), path)
    with pytest.raises(SubmissionError) as error:
        sub.read_submission(path)  # the Kaggle defaults: 6144 pixels per frame
    message = str(error.value)
    assert str(path) in message
    assert "header has 25 columns; expected 6145: id + 6144 pixel columns 0..6143" in message


def test_wrong_column_name(tmp_path):
    path = _write_small(tmp_path)
    _edit_cell(path, line=0, column=5, text="pixel4")
    with pytest.raises(SubmissionError, match=r"header column 6 is 'pixel4'; expected '4'"):
        sub.read_submission(path, **SMALL)


def test_wrong_row_count(tmp_path):
    path = _write_small(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SubmissionError) as error:
        sub.read_submission(path, **SMALL)
    assert "5 data rows; expected 6 (2 sequences x 3 frames" in str(error.value)
    assert str(path) in str(error.value)


def test_ids_out_of_order(tmp_path):
    path = _write_small(tmp_path)
    lines = path.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]  # rows with ids 2 and 3 swapped
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SubmissionError, match=r"row 2 \(line 4\), column id: id is 3; expected ids 0..5 in order"):
        sub.read_submission(path, **SMALL)


@pytest.mark.parametrize(("text", "shown"), [("abc", "'abc'"), ("1.5", "'1.5'|1.5"), ("", "an empty cell")])
def test_non_integer_value_names_row_and_column(tmp_path, text, shown):
    path = _write_small(tmp_path)
    _edit_cell(path, line=3, column=8, text=text)  # data row 2, pixel column "7"
    with pytest.raises(SubmissionError) as error:
        sub.read_submission(path, **SMALL)
    message = str(error.value)
    assert f"{path}: row 2 (line 4), column '7': found" in message
    assert "expected an integer" in message
    assert any(option in message for option in shown.split("|"))


def test_integral_float_values_are_accepted(tmp_path):
    path = _write_small(tmp_path)
    _edit_cell(path, line=1, column=1, text="12.0")
    assert sub.read_submission(path, **SMALL)[0, 0, 0, 0, 0] == 12


@pytest.mark.parametrize("value", ["256", "-1"])
def test_value_outside_0_255_names_row_and_column(tmp_path, value):
    path = _write_small(tmp_path)
    _edit_cell(path, line=5, column=24, text=value)  # data row 4, last pixel column "23"
    with pytest.raises(SubmissionError) as error:
        sub.read_submission(path, **SMALL)
    assert f"row 4 (line 6), column '23': value {value} is outside 0..255" in str(error.value)


def test_ragged_row(tmp_path):
    path = _write_small(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] += ",7"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SubmissionError, match="not a well-formed CSV") as error:
        sub.read_submission(path, **SMALL)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------

TINY_FRAME = (3, 2, 2)  # scoring does not depend on the frame size; small keeps tests fast


def _truth(num_sequences: int = 5, frames: int = 630, value: int = 0) -> np.ndarray:
    return np.full((num_sequences, frames, *TINY_FRAME), value, dtype=np.uint8)


def test_psnr_by_hand():
    truth = np.zeros((2, 3, 2, 2), np.uint8)
    pred = truth.copy()
    pred[0] += 1  # every pixel off by one: MSE 1
    psnr = scoring.psnr_255(pred, truth)
    assert psnr.shape == (2,)
    assert psnr[0] == pytest.approx(10 * math.log10(255**2 / 1))  # 48.13 dB
    assert psnr[1] == scoring.PSNR_CAP_DB == 100.0  # exact frame: capped


def test_only_frames_1_to_600_are_scored():
    truth = _truth()
    pred = truth + 1
    pred[:, 0] = 255  # the given first frame: not scored
    pred[:, 601:] = 255  # beyond frame 600: not scored
    result = scoring.score(pred, truth)
    expected = 10 * math.log10(255**2)
    assert result.overall == pytest.approx(expected)
    assert result.overall == pytest.approx(48.1308036)
    assert result.public == pytest.approx(expected) and result.private == pytest.approx(expected)
    assert result.per_sequence == pytest.approx([expected] * 5)


def test_public_and_private_use_the_right_sequences():
    truth = _truth()
    pred = truth.copy()
    errors = [1, 2, 3, 4, 5]  # sequence s is off by s + 1 everywhere
    for s, e in enumerate(errors):
        pred[s] += e
    per_sequence = [10 * math.log10(255**2 / e**2) for e in errors]
    result = scoring.score(pred, truth)
    assert result.per_sequence == pytest.approx(per_sequence)
    assert result.public == pytest.approx(np.mean(per_sequence[:3]))
    assert result.private == pytest.approx(np.mean(per_sequence[3:]))
    assert result.overall == pytest.approx(np.mean(per_sequence))


def test_fewer_sequences_score_what_is_present():
    truth = _truth(num_sequences=2)
    result = scoring.score(truth + 1, truth)
    assert result.public == pytest.approx(48.1308036)
    assert math.isnan(result.private)
    assert "n/a" in scoring.format_score_table(result, result)
    # 2x2 frames are smaller than SSIM's 11x11 window: no SSIM, and the table says why.
    assert math.isnan(result.ssim_overall) and all(math.isnan(v) for v in result.ssim_per_sequence)
    assert "SSIM n/a: frames smaller than its 11x11 window" in scoring.format_score_table(result, result)


def test_score_rejects_bad_inputs():
    with pytest.raises(SubmissionError, match="ground truth has 600 frames per sequence; scoring needs at least 601"):
        scoring.score(_truth(frames=600), _truth(frames=600))
    with pytest.raises(SubmissionError, match="predictions have dtype float64; expected uint8"):
        scoring.score(np.zeros((5, 630, *TINY_FRAME)), _truth())
    with pytest.raises(SubmissionError, match=r"predictions have shape \(5, 601, 3, 2, 2\) but ground truth \(5, 630"):
        scoring.score(_truth(frames=601), _truth())


def test_baseline_repeats_the_first_frame():
    first = np.arange(2 * 12, dtype=np.uint8).reshape(2, *TINY_FRAME)
    baseline = scoring.baseline_predictions(first, num_frames=4)
    assert baseline.shape == (2, 4, *TINY_FRAME) and baseline.dtype == np.uint8
    for t in range(4):
        np.testing.assert_array_equal(baseline[:, t], first)


def test_score_submission_scores_model_and_baseline(tmp_path):
    truth = _truth(value=100)
    truth[:, 0] = 110  # the first frame differs from the rest by 10 grey levels
    pred = truth + 2
    path = tmp_path / "submission.csv"
    sub.write_submission(pred, path)

    model, baseline = scoring.score_submission(path, truth)
    assert model.overall == pytest.approx(10 * math.log10(255**2 / 4))
    assert baseline.overall == pytest.approx(10 * math.log10(255**2 / 100))
    assert baseline.public == pytest.approx(baseline.private)

    table = scoring.format_score_table(model, baseline)
    lines = table.splitlines()
    assert lines[0].split() == ["PSNR", "(dB)", "SSIM"]
    assert lines[1].split() == ["public", "private", "overall"] * 2
    assert lines[2].startswith("model") and f"{model.overall:.2f}" in lines[2]
    assert lines[3].startswith("repeat-first-frame baseline") and f"{baseline.overall:.2f}" in lines[3]
    assert "frames 1-600" in table and "data range 255" in table


SSIM_FRAME = (3, 12, 16)  # the smallest convenient frame that holds SSIM's 11x11 window


def _changing_truth(num_sequences: int = 5, seed: int = 0) -> np.ndarray:
    """Random frames: every frame differs from the first, so repeating it is a poor prediction."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num_sequences, 630, *SSIM_FRAME), dtype=np.uint8)


def _reference_ssim(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """ssim_per_frame of frames 1..600 on the frames / 255: [S, 600]."""
    as_float = lambda frames: torch.from_numpy(frames[:, 1:601].astype(np.float32) / 255)  # noqa: E731
    return ssim_per_frame(as_float(pred), as_float(truth)).numpy()


def test_ssim_of_the_truth_is_one_and_of_the_baseline_below_one(tmp_path):
    truth = _changing_truth(num_sequences=2)
    path = tmp_path / "submission.csv"
    sub.write_submission(truth, path)

    model, baseline = scoring.score_submission(path, truth)
    assert model.ssim_overall == pytest.approx(1.0, abs=1e-5)
    assert model.ssim_public == pytest.approx(1.0, abs=1e-5) and math.isnan(model.ssim_private)
    assert model.ssim_per_sequence == pytest.approx([1.0, 1.0], abs=1e-5)
    assert baseline.ssim_overall < 0.5
    expected = _reference_ssim(scoring.baseline_predictions(truth[:, 0], 630), truth)
    assert baseline.ssim_per_sequence == pytest.approx(expected.mean(axis=1), abs=1e-5)

    table = scoring.format_score_table(model, baseline)
    assert "SSIM" in table and "1.000" in table.splitlines()[2]
    assert f"{baseline.ssim_overall:.3f}" in table.splitlines()[3]


def test_ssim_covers_frames_1_to_600_and_the_same_sequences_as_psnr():
    truth = _changing_truth()
    rng = np.random.default_rng(1)
    pred = truth.copy()
    for s in range(5):  # sequence s: noise of s + 1 grey levels, so every sequence scores differently
        noise = rng.integers(-(s + 1), s + 2, truth.shape[1:])
        pred[s] = np.clip(truth[s].astype(np.int64) + noise, 0, 255).astype(np.uint8)
    unscored = pred.copy()
    unscored[:, 0] = 255 - truth[:, 0]  # the given first frame and frames past 600: not scored
    unscored[:, 601:] = 255 - truth[:, 601:]

    result = scoring.score(unscored, truth)
    per_sequence = _reference_ssim(pred, truth).mean(axis=1)
    assert result.ssim_per_sequence == pytest.approx(per_sequence, abs=1e-6)
    assert result.ssim_public == pytest.approx(per_sequence[:3].mean(), abs=1e-6)
    assert result.ssim_private == pytest.approx(per_sequence[3:].mean(), abs=1e-6)
    assert result.ssim_overall == pytest.approx(per_sequence.mean(), abs=1e-6)
    assert sorted(result.ssim_per_sequence, reverse=True) == result.ssim_per_sequence  # more noise, less SSIM


def test_score_submission_checks_the_truth_before_reading(tmp_path):
    with pytest.raises(SubmissionError, match="at least 601"):
        scoring.score_submission(tmp_path / "missing.csv", _truth(frames=10))


def test_strict_json_writes_null_for_nan_so_every_parser_reads_a_score():
    """score.json: a private half with no sequences (NaN) is null, not Python's non-standard NaN."""
    from lab4.io import strict_json

    text = strict_json({"private": float("nan"), "per_sequence": [21.5, float("inf")], "overall": 22.0})

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    assert json.loads(text, parse_constant=refuse) == {"private": None, "per_sequence": [21.5, None], "overall": 22.0}
