"""label_norm: which statistics the label encoder's BatchNorm normalises with at generation.

The Tester's choice ("frame") against lab4 predict is tests/test_template_compat.py's; here:
"precise" fills the running buffers with the training labels' statistics, the choice changes
nothing in training, and `lab4 label-norm` repeats what a run trained with each choice logs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lab4 import cli
from lab4.config import make_config
from lab4.data import load_split
from lab4.evaluate import precise_label_stats
from lab4.model import VideoCVAE
from lab4.rollout import rollout
from lab4.runs.checkpoint import load_checkpoint
from lab4.train import build_model, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_precise_statistics_are_those_of_every_training_label() -> None:
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16)
    labels = np.random.default_rng(0).integers(200, 256, (40, 3, 32, 64), dtype=np.uint8)
    norm = model.label_transformation[2]
    model.eval()
    precise_label_stats(model, labels, torch.device("cpu"))
    with torch.no_grad():
        pad, conv = model.label_transformation[0], model.label_transformation[1]
        pre_bn = conv(pad(torch.from_numpy(labels).float() / 255))
    torch.testing.assert_close(norm.running_mean, pre_bn.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm.running_var, pre_bn.var(dim=(0, 2, 3)), rtol=1e-4, atol=1e-7)
    assert not model.training  # the model's mode is left as it was


def test_frame_normalises_each_label_alone_and_running_uses_the_buffers() -> None:
    """A rollout's frames depend on the other labels of the rollout under no choice, and on the
    buffers only under running."""
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16).eval()
    gen = torch.Generator().manual_seed(1)
    first, labels = torch.rand(1, 3, 32, 64, generator=gen), torch.rand(1, 6, 3, 32, 64, generator=gen)
    frame = rollout(model, first, labels, z_mode="zero", label_norm="frame")
    running = rollout(model, first, labels, z_mode="zero", label_norm="running")
    with torch.no_grad():
        model.label_transformation[2].running_var.mul_(4.0)
    assert torch.equal(rollout(model, first, labels, z_mode="zero", label_norm="frame"), frame)
    assert not torch.allclose(rollout(model, first, labels, z_mode="zero", label_norm="running"), running, atol=1e-3)
    with pytest.raises(ValueError, match="label_norm 'batch'"):
        rollout(model, first, labels, label_norm="batch")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data) -> dict[str, Path]:
    """One short smoke run per choice, every epoch's checkpoint kept."""
    root = tmp_path_factory.mktemp("label_norm")
    out = {}
    for choice in ("frame", "running", "precise"):
        cfg = make_config("smoke", {"data_root": str(tiny_data), "partial": 0.25, "val_vi_len": 12, "threads": 1,
                                    "label_norm": choice})
        train(cfg, root / choice, progress=False)
        out[choice] = root / choice
    return out


def logged(run: Path) -> pd.Series:
    return pd.read_csv(run / "train_log.csv").set_index("epoch")["val_psnr"]


def test_the_choice_changes_nothing_in_training(runs: dict[str, Path]) -> None:
    weights = {c: load_checkpoint(runs[c] / "checkpoints" / "last.pt")["model"] for c in runs}
    for key, value in weights["frame"].items():
        if key.startswith("label_transformation.2.") and not key.endswith(("weight", "bias")):
            continue  # the BatchNorm's buffers: "precise" rewrites them; nothing in training reads them
        assert torch.equal(value, weights["running"][key]) and torch.equal(value, weights["precise"][key]), key
    # ... while what each validation logged depends on it.
    assert not np.allclose(logged(runs["frame"]), logged(runs["running"]))


def test_a_precise_run_keeps_the_training_labels_statistics(runs: dict[str, Path], tiny_data: Path) -> None:
    state = load_checkpoint(runs["precise"] / "checkpoints" / "last.pt")
    model = build_model(make_config("smoke"))  # as the run's: channels_last computes the statistics in its order
    model.load_state_dict(state["model"])
    state = state["model"]
    precise_label_stats(model, load_split(tiny_data, "train").labels, torch.device("cpu"))
    for key in ("running_mean", "running_var"):
        torch.testing.assert_close(state[f"label_transformation.2.{key}"],
                                   getattr(model.label_transformation[2], key))


def test_label_norm_command_repeats_what_each_choice_logs(runs: dict[str, Path], capsys) -> None:
    """`lab4 label-norm` on the frame run gives, per kept epoch, what the run trained with each
    choice logged at that epoch (the same training, the same z draws)."""
    assert cli.main(["label-norm", str(runs["frame"])]) == 0
    printed = capsys.readouterr().out
    assert "largest fall between consecutive checkpoints" in printed and "baseline" in printed
    table = pd.read_csv(runs["frame"] / "label_norm.csv")
    assert sorted(table["epoch"].unique()) == [1, 2]
    for choice in runs:
        ours = table[table["label_norm"] == choice].set_index("epoch")["val_psnr"]
        np.testing.assert_allclose(ours.to_numpy(), logged(runs[choice]).loc[ours.index].to_numpy(), rtol=0,
                                   atol=1e-4, err_msg=choice)


def test_label_norm_command_summarises_several_runs_and_reuses_its_tables(runs: dict[str, Path], capsys) -> None:
    """Several runs: a summary over them at their last checkpoints (mean ± sd and the 95 %
    interval of each choice); a table written after the run's last checkpoint is read, not redone."""
    folders = [str(runs["running"]), str(runs["precise"])]
    assert cli.main(["label-norm", *folders]) == 0
    written = {f: (Path(f) / "label_norm.csv").stat().st_mtime_ns for f in folders}
    summary = capsys.readouterr().out.split("over 2 runs")[1]
    finals = pd.concat([pd.read_csv(Path(f) / "label_norm.csv").query("epoch == 2") for f in folders])
    for choice in ("frame", "running", "precise"):
        values = finals[finals["label_norm"] == choice]["val_psnr"]
        line = next(row for row in summary.splitlines() if row.startswith(choice))
        assert f"{values.mean():.2f} ± {values.std():.2f} (n=2)" in line
    assert cli.main(["label-norm", *folders]) == 0
    assert {f: (Path(f) / "label_norm.csv").stat().st_mtime_ns for f in folders} == written
    assert cli.main(["label-norm", folders[0], "--force"]) == 0
    assert (Path(folders[0]) / "label_norm.csv").stat().st_mtime_ns != written[folders[0]]
