"""z-sampling strategies: the best-of-N oracle of the rollout, the side-by-side comparison and its CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from lab4 import cli
from lab4.config import make_config
from lab4.metrics import ssim_per_frame
from lab4.model import VideoCVAE
from lab4.report.zsampling import STRATEGIES, compare_z_strategies, val_strategies
from lab4.rollout import rollout
from lab4.train import train
from tests.conftest import write_dataset

SEQS, LENGTH, N_DIM = 2, 5, 4

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(prior: str) -> VideoCVAE:
    torch.manual_seed(0)
    return VideoCVAE(16, 8, N_DIM, 16, prior=prior).eval()


def videos(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((SEQS, LENGTH, 3, 32, 64), generator=gen), torch.rand((SEQS, LENGTH, 3, 32, 64), generator=gen)


def noise(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_best_of_one_sample_is_the_prior_sample(prior: str) -> None:
    model = tiny_model(prior)
    frames, labels = videos()
    best = rollout(model, frames[:, 0], labels, z_mode="best_of", samples=1, generator=noise(), truth=frames)
    sampled = rollout(model, frames[:, 0], labels, z_mode="prior", generator=noise())
    assert torch.equal(best, sampled)


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_best_of_keeps_the_candidate_closest_to_the_truth(prior: str) -> None:
    """Replays the rollout step by step with the same noise: at every step the kept frame is
    the candidate of least MSE to the true frame among the N decoded from the same previous
    frame, so its MSE is at most that of the prior sample (candidate 0), by construction."""
    samples = 4
    model = tiny_model(prior)
    frames, labels = videos()
    out = rollout(model, frames[:, 0], labels, z_mode="best_of", samples=samples, generator=noise(), truth=frames)
    assert torch.equal(out[:, 0], frames[:, 0])
    gen = noise()
    with torch.no_grad():
        for t in range(1, LENGTH):
            prev_feat = model.encode_frames(out[:, t - 1]).repeat_interleave(samples, dim=0)
            label_feat = model.encode_labels(labels[:, t], per_frame=True).repeat_interleave(samples, dim=0)
            eps = torch.randn((SEQS * samples, N_DIM, 32, 64), generator=gen)
            if model.learned_prior:
                mu_p, logvar_p = model.prior(prev_feat, label_feat)
                z = mu_p + eps * torch.exp(0.5 * logvar_p)
            else:
                z = eps
            candidates = model.to_image(model.decode(prev_feat, label_feat, z)).unflatten(0, (SEQS, samples))
            mse = (candidates - frames[:, t, None]).pow(2).mean(dim=(-3, -2, -1))  # (S, N)
            kept = (out[:, t] - frames[:, t]).pow(2).mean(dim=(-3, -2, -1))
            torch.testing.assert_close(kept, mse.min(dim=1).values)
            assert (kept <= mse[:, 0] + 1e-7).all()
            assert (mse.max(dim=1).values > mse.min(dim=1).values).all(), "the samples should differ"


def test_best_of_needs_the_truth() -> None:
    model = tiny_model("fixed")
    frames, labels = videos()
    with pytest.raises(ValueError, match="oracle"):
        rollout(model, frames[:, 0], labels, z_mode="best_of", samples=2)
    with pytest.raises(ValueError, match="z_mode"):
        rollout(model, frames[:, 0], labels, z_mode="best")


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_compare_z_strategies_tables(prior: str, monkeypatch) -> None:
    model = tiny_model(prior)
    frames, labels = videos()
    per_frame, summary = compare_z_strategies(model, frames, labels, samples=3, seed=5)
    assert list(per_frame.columns) == ["strategy", "sequence", "frame", "psnr", "baseline_psnr", "ssim",
                                       "baseline_ssim"]
    assert {"mean_ssim", "baseline_mean_ssim"} <= set(summary.columns)
    for column in ("ssim", "baseline_ssim"):
        assert per_frame[column].between(-1.0, 1.0).all() and per_frame[column].notna().all()
    # The baseline SSIM is ssim_per_frame of the first frame repeated, for every strategy alike.
    repeated = ssim_per_frame(frames[:, :1].expand_as(frames[:, 1:]), frames[:, 1:])  # (S, T-1)
    for strategy in STRATEGIES:
        rows = per_frame[per_frame["strategy"] == strategy].sort_values(["sequence", "frame"])
        assert rows["baseline_ssim"].to_numpy() == pytest.approx(repeated.reshape(-1).numpy(), abs=1e-6)
    assert summary["baseline_mean_ssim"].to_numpy() == pytest.approx([repeated.mean().item()] * len(STRATEGIES))
    assert len(per_frame) == len(STRATEGIES) * SEQS * (LENGTH - 1)
    assert list(summary["strategy"]) == list(STRATEGIES)
    assert list(summary["is_oracle"]) == [False, False, False, True]
    assert list(summary["samples"]) == [1, 1, 3, 3]
    # The baseline is the same for every strategy, and the summary is the mean of the per-frame rows.
    assert summary["baseline_mean_psnr"].nunique() == 1
    means = per_frame.groupby("strategy", sort=False)[["psnr", "ssim"]].mean()
    assert means["psnr"].to_numpy() == pytest.approx(summary["mean_psnr"].to_numpy(), rel=1e-5)
    assert means["ssim"].to_numpy() == pytest.approx(summary["mean_ssim"].to_numpy(), abs=1e-6)
    # Short videos: Kaggle's frames 1..600 are all of the predicted frames.
    assert summary["psnr_frames_1_600"].to_numpy() == pytest.approx(summary["mean_psnr"].to_numpy(), rel=1e-5)
    assert summary["ssim_frames_1_600"].to_numpy() == pytest.approx(summary["mean_ssim"].to_numpy(), abs=1e-6)
    assert summary["baseline_ssim_frames_1_600"].to_numpy() == pytest.approx(
        summary["baseline_mean_ssim"].to_numpy(), abs=1e-6)
    # The 1-600 columns average Kaggle's scored frames only: with frames 1-2 scored, those two.
    monkeypatch.setattr("lab4.report.zsampling.scored_frames_for", lambda length: [1, 2])
    per_frame, summary = compare_z_strategies(model, frames, labels, samples=3, seed=5)
    first_two = per_frame[per_frame["frame"] <= 2].groupby("strategy", sort=False).mean(numeric_only=True)
    for summary_column, frame_column in [("psnr_frames_1_600", "psnr"), ("ssim_frames_1_600", "ssim"),
                                         ("baseline_psnr_frames_1_600", "baseline_psnr"),
                                         ("baseline_ssim_frames_1_600", "baseline_ssim")]:
        assert summary[summary_column].to_numpy() == pytest.approx(first_two[frame_column].to_numpy(), rel=1e-5)
    assert summary["ssim_frames_1_600"].to_numpy() != pytest.approx(summary["mean_ssim"].to_numpy())
    monkeypatch.undo()
    # One video works too; with one sample per step best_of is the prior sample (same seed).
    per_frame, summary = compare_z_strategies(model, frames[0], labels[0], samples=1, seed=5)
    assert set(per_frame["sequence"]) == {0} and len(per_frame) == len(STRATEGIES) * (LENGTH - 1)
    rows = summary.set_index("strategy")
    assert rows.loc["best_of", "mean_psnr"] == rows.loc["prior", "mean_psnr"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """A smoke run with the learned prior, on data with test ground truth."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, n_train=16, n_val=12, n_test=2, test_len=6, with_gt=True)
    run = tmp_path_factory.mktemp("runs") / "learned"
    cfg = make_config("smoke", {"data_root": str(root), "val_vi_len": 12, "num_epoch": 1, "prior": "learned"})
    train(cfg, run, progress=False)
    return root, run


def test_cli_strategies_on_val_and_test(trained_run, tmp_path, capsys) -> None:
    root, run = trained_run
    assert cli.main(["strategies", str(run), "--samples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "best_of (ORACLE)" in printed and "baseline" in printed and "prior learned" in printed
    assert "SSIM" in printed and "baseline SSIM" in printed
    out = run / "strategies"
    per_frame = pd.read_csv(out / "z_strategies.csv")
    summary = pd.read_csv(out / "z_strategies_summary.csv")
    assert sorted(p.name for p in out.iterdir()) == ["z_strategies.csv", "z_strategies_summary.csv"]  # no temp files
    assert len(per_frame) == len(STRATEGIES) * 11 and set(per_frame["split"]) == {"val"}
    assert list(summary["strategy"]) == list(STRATEGIES) and list(summary["samples"]) == [1, 1, 2, 2]
    assert summary.set_index("strategy").loc["best_of", "is_oracle"]
    assert {"ssim", "baseline_ssim"} <= set(per_frame.columns)
    assert {"mean_ssim", "baseline_mean_ssim"} <= set(summary.columns)

    assert cli.main(["strategies", str(run), "--samples", "2", "--split", "test", "--checkpoint", "last"]) == 0
    per_frame = pd.read_csv(out / "z_strategies_test.csv")
    assert len(per_frame) == len(STRATEGIES) * 2 * 5 and set(per_frame["split"]) == {"test"}
    assert set(pd.read_csv(out / "z_strategies.csv")["split"]) == {"val"}  # the val tables are kept

    # What the report calls: the saved val table when it used as many samples, else computed anew.
    written = (out / "z_strategies.csv").stat().st_mtime_ns
    assert val_strategies(run, samples=2).equals(pd.read_csv(out / "z_strategies.csv"))
    assert (out / "z_strategies.csv").stat().st_mtime_ns == written
    assert set(val_strategies(run, samples=3)["strategy"]) == set(STRATEGIES)
    assert list(pd.read_csv(out / "z_strategies_summary.csv")["samples"]) == [1, 1, 3, 3]

    no_truth = tmp_path / "no_gt"
    write_dataset(no_truth, n_train=4, n_val=4, n_test=2, test_len=6, with_gt=False)
    assert cli.main(["strategies", str(run), "--split", "test", "--data", str(no_truth)]) == 2
    assert "test_gt" in capsys.readouterr().err
