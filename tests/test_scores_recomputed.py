"""Every score lab4 reports, recomputed here from the frames by independent code.

`lab4.evaluate.validate` (the val rollout's PSNR, SSIM and repeat-first-frame baseline),
`val_rollout.npz` and the logs a short training writes, `lab4.predict.predict_test`
(predictions.npy, submission.csv, score.json) and `python -m lab4 score` are checked against:
- PSNR written here with numpy in float64 (data range 1 on float frames, 255 on uint8 ones);
- SSIM written here as Wang et al. (2004) define it, the way lab4/metrics.py documents it: an
  11 x 11 Gaussian window of sigma 1.5 (the 2-D window itself, not the separable filter lab4 uses),
  weighted means and (two-pass) variances and covariance at every position where the window
  fits, C1 = (0.01 L)^2, C2 = (0.03 L)^2, averaged over channels and positions;
- the baseline built here from the ground truth's first frame;
- the frames and labels read from the dataset's PNG files with PIL, not lab4's loader;
- Kaggle's rule applied to the rows of submission.csv by their id: frames 1..600 of each
  sequence (id % 630 != 0 and id % 630 < 601), public = sequences 0-2, private = 3-4.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lab4 import cli
from lab4.config import make_config
from lab4.evaluate import validate
from lab4.model import VideoCVAE
from lab4.predict import predict_test
from lab4.rollout import rollout
from lab4.runs import RunPaths
from lab4.submission import write_submission
from lab4.train import train
from tests.conftest import save_png

pytestmark = pytest.mark.usefixtures("one_thread")

VAL_LEN = 12      # frames of the val rollout the training validates on
TEST_LEN = 12     # frames of each test sequence predict rolls out (scored: 1..11)
KAGGLE_LEN = 630  # frames of a Kaggle test sequence (scored: 1..600)


# ---------------------------------------------------------------------------------------
# The independent computations
# ---------------------------------------------------------------------------------------


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float) -> np.ndarray:
    """Per-frame PSNR in dB over the last three axes, in float64; 100 dB for an exact frame (lab4's cap)."""
    mse = ((pred.astype(np.float64) - truth.astype(np.float64)) ** 2).mean(axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(data_range**2 / mse), 100.0)


def _gaussian_window() -> np.ndarray:
    coords = np.arange(11) - 5.0
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g)
    return window / window.sum()


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-frame SSIM over the last three axes (C, H, W), any leading axes, in float64."""
    lead = pred.shape[:-3]
    x = pred.reshape(-1, *pred.shape[-3:]).astype(np.float64)
    y = truth.reshape(-1, *truth.shape[-3:]).astype(np.float64)
    window = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = []
    for start in range(0, len(x), 8):  # 8 frames at a time bound the patches' memory
        a = np.lib.stride_tricks.sliding_window_view(x[start:start + 8], (11, 11), axis=(-2, -1))
        b = np.lib.stride_tricks.sliding_window_view(y[start:start + 8], (11, 11), axis=(-2, -1))
        mu_a = np.einsum("...ij,ij->...", a, window)
        mu_b = np.einsum("...ij,ij->...", b, window)
        da, db = a - mu_a[..., None, None], b - mu_b[..., None, None]
        var_a = np.einsum("...ij,ij->...", da * da, window)
        var_b = np.einsum("...ij,ij->...", db * db, window)
        cov = np.einsum("...ij,ij->...", da * db, window)
        ssim_map = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        out.append(ssim_map.mean(axis=(1, 2, 3)))
    return np.concatenate(out).reshape(lead)


def read_png(path: Path) -> np.ndarray:
    """uint8 (3, H, W)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


def read_frames(folder: Path, count: int | None = None) -> np.ndarray:
    """The PNGs of a folder in the order of the integer in their names, uint8 (T, 3, H, W)."""
    paths = sorted(folder.glob("*.png"), key=lambda p: int(re.search(r"\d+", p.name).group()))
    return np.stack([read_png(p) for p in paths[:count]])


def split_means(per_frame: np.ndarray) -> dict[str, float]:
    """Kaggle's means of a (sequences, scored frames) table: public 0-2, private 3-4, all."""
    private = float(per_frame[3:5].mean()) if len(per_frame) > 3 else float("nan")
    return {"public": float(per_frame[:3].mean()), "private": private, "overall": float(per_frame.mean())}


# ---------------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------------


def test_validate_scores_its_rollout_and_the_baseline_as_computed_here(tiny_data: Path) -> None:
    """PSNR, SSIM, MSE and the repeat-first-frame baseline of every predicted frame, recomputed
    from the frames validate returns and the val video; the frames are the rollout of that video."""
    frames_u8 = read_frames(tiny_data / "val" / "val_img", 16)
    labels_u8 = read_frames(tiny_data / "val" / "val_label", 16)
    frames, labels = torch.from_numpy(frames_u8).float() / 255, torch.from_numpy(labels_u8).float() / 255
    torch.manual_seed(0)
    model = VideoCVAE(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16).eval()

    result = validate(model, frames, labels, z_mode="prior", seed=3)
    pred = result.predictions.numpy()
    assert pred.shape == frames_u8.shape
    # The frames scored are the rollout of this video from its first frame, with the given seed's z.
    expected = rollout(model, frames[:1], labels[None], z_mode="prior", generator=torch.Generator().manual_seed(3))
    assert torch.equal(result.predictions, expected[0])
    assert np.array_equal(pred[0], frames_u8[0] / np.float32(255))

    truth = frames.numpy()
    baseline = np.repeat(truth[:1], len(truth) - 1, axis=0)
    np.testing.assert_allclose(result.psnr, psnr(pred[1:], truth[1:], 1.0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(result.baseline_psnr, psnr(baseline, truth[1:], 1.0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(result.ssim, ssim(pred[1:], truth[1:]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.baseline_ssim, ssim(baseline, truth[1:]), rtol=0, atol=1e-5)
    assert result.mse == pytest.approx(((pred[1:].astype(np.float64) - truth[1:]) ** 2).mean(), rel=1e-5)
    assert len(result.psnr) == len(truth) - 1  # frames 1..T-1: frame 0 is given, not scored
    # Not vacuous: the model's frames and the baseline's score differently on every frame.
    assert np.abs(result.psnr - result.baseline_psnr).min() > 0.5


# ---------------------------------------------------------------------------------------
# A short training: val_rollout.npz and the logs
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data: Path) -> Path:
    """Two smoke epochs on a quarter of the tiny synthetic data, validating on VAL_LEN frames. The
    model starts as repeat-the-previous-frame (init identity, which needs F and D of 24), so that
    its frames resemble the video's (33 dB on frame 1, 20 dB on frame 5): at smoke's template
    initialisation they are near black (5 dB on every frame), equally far from every frame of the
    video, and a score computed against the wrong frame would not show."""
    run = tmp_path_factory.mktemp("runs") / "smoke"
    cfg = make_config("smoke", {"data_root": str(tiny_data), "num_epoch": 2, "partial": 0.25,
                                "val_vi_len": VAL_LEN, "threads": 1, "init": "identity", "F_dim": 24,
                                "D_out_dim": 24})
    train(cfg, run, progress=False)
    return run


def test_val_rollout_npz_reads_back_and_its_scores_recompute_from_its_frames(trained_run: Path,
                                                                            tiny_data: Path) -> None:
    paths = RunPaths(trained_run)
    with np.load(paths.val_rollout) as saved:
        record = {name: saved[name] for name in saved.files}
    assert int(record["epoch"]) == 2  # the last validation's rollout
    prediction, truth = record["prediction"], record["truth"]
    for name in ("prediction", "truth", "labels"):
        assert record[name].dtype == np.uint8 and record[name].shape == (VAL_LEN, 3, 32, 64), name
    assert np.array_equal(truth, read_frames(tiny_data / "val" / "val_img", VAL_LEN))
    assert np.array_equal(record["labels"], read_frames(tiny_data / "val" / "val_label", VAL_LEN))
    assert np.array_equal(prediction[0], truth[0])  # the given first frame

    # The baseline's frames are the truth's, exactly: its scores recompute to float precision.
    baseline = np.repeat(truth[:1], VAL_LEN - 1, axis=0)
    np.testing.assert_allclose(record["baseline_psnr"], psnr(baseline, truth[1:], 255.0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(record["baseline_ssim"], ssim(baseline / 255, truth[1:] / 255), rtol=0, atol=1e-5)
    # The model's were scored on its float frames, saved rounded to 8 bits: errors of at most half
    # a grey level, uncorrelated with the frame's error, which move its PSNR by 0.011 dB at most on
    # these frames (and its SSIM by 7e-4).
    np.testing.assert_allclose(record["psnr"], psnr(prediction[1:], truth[1:], 255.0), rtol=0, atol=0.05)
    np.testing.assert_allclose(record["ssim"], ssim(prediction[1:] / 255, truth[1:] / 255), rtol=0, atol=2e-3)
    assert np.abs(record["psnr"] - record["baseline_psnr"]).min() > 0.1  # the two columns are told apart

    # The logs hold the same numbers: val_psnr.csv per frame, train_log.csv their means.
    rows = [r for r in csv.DictReader(paths.val_log.read_text().splitlines()) if r["epoch"] == "2"]
    assert [int(r["frame"]) for r in rows] == list(range(1, VAL_LEN))
    for column in ("psnr", "baseline_psnr", "ssim", "baseline_ssim"):
        np.testing.assert_allclose([float(r[column]) for r in rows], record[column], rtol=1e-6, atol=0)
    last = list(csv.DictReader(paths.epoch_log.read_text().splitlines()))[-1]
    assert last["epoch"] == "2"
    for column, frames_column in (("val_psnr", "psnr"), ("baseline_psnr", "baseline_psnr"), ("val_ssim", "ssim"),
                                  ("baseline_ssim", "baseline_ssim")):
        assert float(last[column]) == pytest.approx(record[frames_column].mean(), rel=1e-6), column


# ---------------------------------------------------------------------------------------
# predict: predictions.npy, submission.csv, score.json
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_test_data(tmp_path_factory, tiny_data: Path) -> Path:
    """The tiny data's five test sequences cut to TEST_LEN frames (first frame, labels, ground truth)."""
    root = tmp_path_factory.mktemp("short_test")
    for kind, count in (("test_img", 1), ("test_label", TEST_LEN), ("test_gt", TEST_LEN)):
        for sequence in sorted((tiny_data / "test" / kind).iterdir()):
            target = root / "test" / kind / sequence.name
            target.mkdir(parents=True)
            for path in sorted(sequence.glob("*.png"), key=lambda p: int(re.search(r"\d+", p.name).group()))[:count]:
                shutil.copy(path, target / path.name)
    return root


def test_predict_writes_what_it_predicts_and_scores_it_as_computed_here(trained_run: Path, short_test_data: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "test"
    result = predict_test(trained_run, data_root=str(short_test_data), out_dir=out, gifs=False)
    predictions = np.load(out / "predictions.npy")
    assert predictions.dtype == np.uint8 and predictions.shape == (5, TEST_LEN, 3, 32, 64)
    assert np.array_equal(predictions, result.frames)
    sequences = [str(s) for s in range(5)]
    first = np.stack([read_frames(short_test_data / "test" / "test_img" / s)[0] for s in sequences])
    truth = np.stack([read_frames(short_test_data / "test" / "test_gt" / s) for s in sequences])
    assert np.array_equal(predictions[:, 0], first)  # frame 0 is the given test_img
    assert not np.array_equal(predictions[:, 1:], np.repeat(first[:, None], TEST_LEN - 1, axis=1))

    # submission.csv: one row per frame, sequence-major, id 0.., each frame flattened C, H, W.
    table = pd.read_csv(out / "submission.csv")
    assert list(table.columns) == ["id", *map(str, range(3 * 32 * 64))]
    assert np.array_equal(table["id"].to_numpy(), np.arange(5 * TEST_LEN))
    assert np.array_equal(table.drop(columns="id").to_numpy(), predictions.reshape(5 * TEST_LEN, -1))

    # score.json: the frames 1..T-1 of these short sequences (1..600 of Kaggle's), by sequence group.
    saved = json.loads((out / "score.json").read_text())
    assert saved["scored_frames"] == [1, TEST_LEN - 1]
    baseline = np.repeat(truth[:, :1], TEST_LEN, axis=1)
    for who, frames in (("model", predictions), ("repeat_first_frame_baseline", baseline)):
        psnr_table = psnr(frames[:, 1:], truth[:, 1:], 255.0)
        ssim_table = ssim(frames[:, 1:] / 255, truth[:, 1:] / 255)
        for split, value in split_means(psnr_table).items():
            assert saved[who][split] == pytest.approx(value, abs=1e-9), (who, split)
        for split, value in split_means(ssim_table).items():
            assert saved[who][f"ssim_{split}"] == pytest.approx(value, abs=1e-5), (who, split)
        assert saved[who]["per_sequence"] == pytest.approx(psnr_table.mean(axis=1).tolist(), abs=1e-9)
        assert saved[who]["ssim_per_sequence"] == pytest.approx(ssim_table.mean(axis=1).tolist(), abs=1e-5)
    assert saved["model"]["overall"] != pytest.approx(saved["repeat_first_frame_baseline"]["overall"], abs=0.1)


# ---------------------------------------------------------------------------------------
# `python -m lab4 score` on a Kaggle-size submission
# ---------------------------------------------------------------------------------------


def kaggle_psnr(submission: Path, truth: np.ndarray) -> dict[str, float]:
    """Kaggle's score read straight from the rows of a submission.csv: per-frame PSNR (data range
    255) of the rows with id % 630 != 0 and id % 630 < 601, averaged over sequences 0-2 (public),
    3-4 (private) and all."""
    table = pd.read_csv(submission)
    ids = table["id"].to_numpy()
    scored = (ids % KAGGLE_LEN != 0) & (ids % KAGGLE_LEN < 601)
    sequence, frame = ids[scored] // KAGGLE_LEN, ids[scored] % KAGGLE_LEN
    pixels = table.drop(columns="id").to_numpy(dtype=np.float64)[scored]
    mse = ((pixels - truth[sequence, frame].reshape(len(pixels), -1)) ** 2).mean(axis=1)
    per_frame = 10 * np.log10(255.0**2 / mse)
    assert np.array_equal(np.bincount(sequence), [600] * len(truth))
    return split_means(np.stack([per_frame[sequence == s] for s in range(len(truth))]))


def printed_scores(text: str) -> dict[str, list[str]]:
    """The PSNR columns (public, private, overall) of each row of `lab4 score`'s table, as printed."""
    rows = {}
    for line in text.splitlines():
        for who in ("model", "repeat-first-frame baseline"):
            if line.startswith(who + " "):
                rows[who] = line[len(who):].split()[:3]
    return rows


def test_lab4_score_prints_kaggles_score_of_the_written_submission(tmp_path: Path, capsys) -> None:
    """Two sequences of 630 frames (Kaggle's length; its test has five, but every extra sequence
    costs a second of SSIM): the model's frames are the truth with noise of another strength per
    sequence, their frame 0 and frames 601-629 far off (Kaggle ignores them: a scorer that counted
    them would print another score). Public is then sequences 0 and 1, private has none."""
    rng = np.random.default_rng(0)
    sequences = 2
    truth = rng.integers(0, 256, (sequences, KAGGLE_LEN, 3, 32, 64), dtype=np.uint8)
    noise = rng.normal(0.0, 1.0, truth.shape) * np.array([4.0, 16.0])[:, None, None, None, None]
    predictions = np.clip(np.rint(truth + noise), 0, 255).astype(np.uint8)
    predictions[:, 0] = 255 - truth[:, 0]
    predictions[:, 601:] = 255 - truth[:, 601:]
    for s in range(sequences):
        for t in range(KAGGLE_LEN):
            save_png(tmp_path / "data" / "test" / "test_gt" / str(s) / f"frame{t}.png", truth[s, t])
    submission = tmp_path / "submission.csv"
    write_submission(predictions, submission)

    expected = kaggle_psnr(submission, truth)
    baseline = split_means(psnr(np.repeat(truth[:, :1], 600, axis=1), truth[:, 1:601], 255.0))
    capsys.readouterr()
    assert cli.main(["score", str(submission), "--truth", str(tmp_path / "data")]) == 0
    printed = printed_scores(capsys.readouterr().out)
    assert set(printed) == {"model", "repeat-first-frame baseline"}, printed
    for who, values in (("model", expected), ("repeat-first-frame baseline", baseline)):
        public, private, overall = printed[who]
        assert private == "n/a", who  # no sequence 3 or 4
        assert float(public) == pytest.approx(values["public"], abs=0.005 + 1e-9), who
        assert float(overall) == pytest.approx(values["overall"], abs=0.005 + 1e-9), who
    # Not vacuous: a scorer that counted frame 0 and frames 601-629, or sequence 0 only (its noise
    # is a quarter of sequence 1's), would print numbers far from these.
    every_frame = psnr(predictions, truth, 255.0).mean()
    sequence_0 = psnr(predictions[0, 1:601], truth[0, 1:601], 255.0).mean()
    assert min(abs(every_frame - expected["overall"]), abs(sequence_0 - expected["overall"])) > 1
