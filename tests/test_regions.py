"""`lab4 regions`: the val error split between the performer and the studio."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from lab4 import cli
from lab4.config import make_config
from lab4.report.regions import performer_mask, region_errors
from lab4.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_error_is_split_by_where_the_performer_is() -> None:
    """A grey studio and a white square that moves; the prediction is off by 0.1 on the studio and
    by 0.2 on the square: every figure follows from those two errors and the square's size."""
    frames = torch.full((6, 3, 32, 64), 0.5)
    for t in range(6):
        frames[t, :, 8:16, 8 * t:8 * t + 8] = 1.0
    performer = performer_mask(frames)
    assert performer.shape == (6, 1, 32, 64) and int(performer[0].sum()) == 64
    assert torch.equal(performer[3, 0, 8:16, 24:32], torch.ones(8, 8, dtype=torch.bool))
    pred = frames + 0.1
    pred[performer.expand_as(frames)] = frames[performer.expand_as(frames)] - 0.2
    share = 64 / (32 * 64)
    got = region_errors(pred, frames, performer)
    assert got["studio_psnr"] == pytest.approx(20.0, abs=1e-4)
    assert got["performer_psnr"] == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-4)
    assert got["performer_pixels"] == pytest.approx(share)
    assert got["performer_error"] == pytest.approx(0.04 * share / (0.04 * share + 0.01 * (1 - share)), rel=1e-5)
    assert got["psnr"] == pytest.approx(10 * math.log10(1 / (0.04 * share + 0.01 * (1 - share))), abs=1e-4)
    assert got["psnr_studio_exact"] == pytest.approx(10 * math.log10(1 / (0.04 * share)), abs=1e-4)
    # Frame 0 is given, not predicted: an error there counts for nothing.
    pred[0] = 0.0
    assert region_errors(pred, frames, performer) == pytest.approx(got)


def test_the_command_measures_the_rollout_that_training_validated(tmp_path: Path, tiny_data: Path, capsys) -> None:
    cfg = make_config("smoke", {"data_root": str(tiny_data), "partial": 0.25, "val_vi_len": 12, "threads": 1})
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    assert cli.main(["regions", str(run), "--checkpoint", "last"]) == 0
    table = pd.read_csv(run / "regions.csv").set_index("what")
    assert list(table.index) == ["model", "repeat-first-frame"]
    last = pd.read_csv(run / "train_log.csv").iloc[-1]
    # The z draws and label statistics of train's validation: its pooled MSE (another seed: 3e-4 dB off).
    assert table.loc["model", "psnr"] == pytest.approx(10 * math.log10(1 / last["val_mse"]), abs=1e-6)
    assert (table["psnr_studio_exact"] >= table["psnr"]).all()
    assert "repeat-first-frame" in capsys.readouterr().out

    assert cli.main(["regions", str(run), "--threshold", "2"]) == 2
    assert "--threshold 2.0" in capsys.readouterr().err
