"""Training end to end on tiny data: save, resume exactly, stop on NaN, predict, CLI."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lab4.step as step_module
import lab4.train as train_module
from lab4 import cli
from lab4.config import make_config
from lab4.predict import predict_test
from lab4.runs import RunPaths
from lab4.runs.checkpoint import load_checkpoint
from lab4.runs.rules import RunExists
from lab4.train import TrainingDiverged, train
from tests.conftest import stopped_at_epoch_2, write_dataset

TIMING_COLUMNS = {"seconds", "train_frames_per_s"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, n_train=24, n_val=12, n_test=5, test_len=12, with_gt=True)
    return root


def smoke(data_root: Path, **overrides):
    return make_config("smoke", {"data_root": str(data_root), "val_vi_len": 12, **overrides})


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_smoke_run_writes_a_complete_run_folder(data_root, tmp_path):
    result = train(smoke(data_root), tmp_path / "run", progress=False)
    paths = RunPaths(tmp_path / "run")
    for f in (paths.config, paths.epoch_log, paths.iter_log, paths.val_log, paths.val_rollout, paths.last,
              paths.best, paths.periodic(1), paths.periodic(2), paths.done):
        assert f.is_file(), f
    assert json.loads(paths.done.read_text())["data_style"] == "not synthetic"
    rows = read_rows(paths.epoch_log)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(math.isfinite(float(r["val_psnr"])) for r in rows)
    assert float(rows[0]["tfr"]) == 1.0 and float(rows[1]["tfr"]) == 0.5  # smoke: tfr_sde 1, step 0.5
    assert [float(r["beta"]) for r in rows] == [0.0, 0.5]  # 1 cycle over 2 epochs, per epoch
    val = read_rows(paths.val_log)
    assert len(val) == 2 * 11 and {"psnr", "baseline_psnr"} <= set(val[0])
    state = load_checkpoint(paths.last)
    assert state["epoch"] == 2 and {"model", "optimizer", "scheduler", "rng", "history"} <= set(state)
    # The scheduler is the template's MultiStepLR: smoke's milestone 1 cuts lr after epoch 1
    assert float(rows[1]["lr"]) == pytest.approx(1e-4)
    assert result.best_psnr == max(float(r["val_psnr"]) for r in rows)


def test_resume_gives_the_same_metrics_as_an_uninterrupted_run(data_root, tmp_path, monkeypatch):
    # The LR warm-up runs into epoch 3, across the interruption.
    cfg = smoke(data_root, num_epoch=3, tf_granularity="batch", kl_anneal_step="iteration", tfr=0.5, tfr_sde=0,
                warmup_iters=60)
    whole = train(cfg, tmp_path / "whole", progress=False)

    real_ratio = train_module.teacher_forcing_ratio

    def interrupt_at_epoch_2(epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C at the start of epoch 3
        return real_ratio(epoch, *args)

    monkeypatch.setattr(train_module, "teacher_forcing_ratio", interrupt_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    assert not RunPaths(tmp_path / "cut").done.exists()
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_ratio)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)

    assert without_timing(read_rows(tmp_path / "cut" / "train_log.csv")) == without_timing(
        read_rows(tmp_path / "whole" / "train_log.csv"))
    assert read_rows(tmp_path / "cut" / "iter_log.csv") == read_rows(tmp_path / "whole" / "iter_log.csv")
    assert read_rows(tmp_path / "cut" / "val_psnr.csv") == read_rows(tmp_path / "whole" / "val_psnr.csv")
    a, b = load_checkpoint(tmp_path / "whole/checkpoints/last.pt"), load_checkpoint(tmp_path / "cut/checkpoints/last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert resumed.best_psnr == whole.best_psnr


def test_lr_warmup_ramps_then_follows_the_schedule(data_root, tmp_path, monkeypatch):
    cfg = smoke(data_root, num_epoch=2, warmup_iters=5, lr=1e-3, lr_schedule="multistep", milestones=[1], gamma=0.1)
    seen: list[float] = []
    real_step = train_module.train_step

    def recording_step(step_module, optimizer, *args, **kwargs):
        seen.append(optimizer.param_groups[0]["lr"])
        return real_step(step_module, optimizer, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", recording_step)
    train(cfg, tmp_path / "run", progress=False)
    per_epoch = len(seen) // 2
    scheduled = [1e-3] * per_epoch + [1e-4] * per_epoch  # the milestone after epoch 1
    assert seen == pytest.approx([lr * min(1.0, (i + 1) / 5) for i, lr in enumerate(scheduled)])
    assert seen[0] == pytest.approx(2e-4)
    logged = [float(row["lr"]) for row in read_rows(tmp_path / "run" / "train_log.csv")]
    assert logged == pytest.approx([1e-3, 1e-4])


def test_resume_refuses_a_changed_config(data_root, tmp_path):
    train(smoke(data_root, num_epoch=1), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="lr: saved 0.001, now 0.5"):
        train(smoke(data_root, num_epoch=1, lr=0.5), tmp_path / "run", resume=True, progress=False)


def test_an_existing_run_is_not_overwritten_by_accident(data_root, tmp_path):
    train(smoke(data_root, num_epoch=1), tmp_path / "run", progress=False)
    with pytest.raises(RunExists, match="--resume"):
        train(smoke(data_root, num_epoch=1), tmp_path / "run", progress=False)
    train(smoke(data_root, num_epoch=1), tmp_path / "run", force=True, progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(smoke(data_root), tmp_path / "empty", resume=True, progress=False)


def test_a_run_saved_with_the_fused_gpu_update_resumes_with_this_machines(data_root, tmp_path, monkeypatch):
    run = tmp_path / "run"
    stopped_at_epoch_2(monkeypatch, lambda: train(smoke(data_root), run, progress=False))
    real_step = train_module.train_step
    last = RunPaths(run).last
    state = load_checkpoint(last)
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = True  # as build_optimizer makes it on a GPU
    torch.save(state, last)
    kernels: list = []

    def recording_step(step_module, optimizer, *args, **kwargs):
        kernels.append(optimizer.param_groups[0].get("fused"))
        return real_step(step_module, optimizer, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", recording_step)
    train(smoke(data_root), run, resume=True, progress=False)
    assert kernels and set(kernels) == {None}  # epoch 2 ran with the CPU's default update


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    cfg = smoke(data_root, num_epoch=2, log_every=1)
    real_loss = step_module.clip_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real_loss(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 3:  # epoch 1 has 3 batches: 24 frames / clips of 4 / batch 2
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(step_module, "clip_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="last good"):
        train(cfg, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (tmp_path / "run/done.json").exists()


def test_bad_data_root_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="nowhere"):
        train(make_config("smoke", {"data_root": str(tmp_path / "nowhere")}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_predict_writes_submission_gifs_and_scores_against_the_baseline(data_root, tmp_path):
    train(smoke(data_root, num_epoch=1), tmp_path / "run", progress=False)
    result = predict_test(tmp_path / "run", z_mode="mean", samples=2)
    out = tmp_path / "run" / "test"
    assert result.frames.shape == (5, 12, 3, 32, 64) and result.frames.dtype == np.uint8
    for name in ["submission.csv", "predictions.npy", "score.json"] + [f"seq_{i}.gif" for i in range(5)]:
        assert (out / name).is_file(), name
    assert result.score is not None and result.baseline is not None
    assert result.scored_frames == range(1, 12)
    saved = json.loads((out / "score.json").read_text())
    for who in ("model", "repeat_first_frame_baseline"):  # PSNR and SSIM, model and baseline
        assert {"overall", "public", "ssim_overall", "ssim_public", "ssim_per_sequence"} <= set(saved[who])
        assert -1.0 <= saved[who]["ssim_overall"] <= 1.0
    assert saved["model"]["ssim_overall"] == pytest.approx(result.score.ssim_overall)
    # Frame 0 of every sequence is its given first frame, test_img, as the PNG holds it; the saved
    # predictions are the returned ones.
    saved_frames = np.load(out / "predictions.npy")
    assert np.array_equal(saved_frames, result.frames)
    for seq in range(5):
        with Image.open(data_root / "test" / "test_img" / str(seq) / "frame0.png") as image:
            given = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(saved_frames[seq, 0], given), seq


def test_rollout_z_modes_are_reproducible(data_root, tmp_path):
    train(smoke(data_root, num_epoch=1), tmp_path / "run", progress=False)
    first = predict_test(tmp_path / "run", z_mode="prior", out_dir=tmp_path / "a", gifs=False).frames
    again = predict_test(tmp_path / "run", z_mode="prior", out_dir=tmp_path / "b", gifs=False).frames
    zero = predict_test(tmp_path / "run", z_mode="zero", out_dir=tmp_path / "c", gifs=False).frames
    assert np.array_equal(first, again)
    assert not np.array_equal(first, zero)


def test_cli_train_predict_score(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--profile", "smoke", "--data", str(data_root), "--run-dir", str(run),
                     "--set", "num_epoch=1", "--set", "val_vi_len=12", "--quiet"]) == 0
    assert "repeat-first-frame baseline" in capsys.readouterr().out
    assert cli.main(["predict", str(run), "--no-gif"]) == 0
    assert "repeat-first-frame baseline" in capsys.readouterr().out
    # Training again into the same folder is refused with a one-line error, not a traceback
    assert cli.main(["train", "--profile", "smoke", "--data", str(data_root), "--run-dir", str(run),
                     "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["train", "--profile", "smoke", "--set", "kl_anneal_type=Linear"]) == 2
    assert "kl_anneal_type" in capsys.readouterr().err


def test_train_existing_resume_keeps_a_finished_run_continues_an_interrupted_one_refuses_others(
        data_root, tmp_path, monkeypatch, capsys):
    """`train --existing resume` (what `make train` runs) follows the one run-folder rule."""
    run = tmp_path / "run"
    args = ["train", "--profile", "smoke", "--data", str(data_root), "--run-dir", str(run), "--set", "num_epoch=1",
            "--set", "val_vi_len=12", "--quiet", "--existing", "resume"]
    starts: list[tuple[bool, bool]] = []

    def recording_train(cfg, run_dir, resume=False, force=False, progress=True):
        starts.append((resume, force))
        return train(cfg, run_dir, resume=resume, force=force, progress=progress)

    monkeypatch.setattr(train_module, "train", recording_train)
    assert cli.main(args) == 0 and starts == [(False, True)]  # a new folder: trained
    capsys.readouterr()
    assert cli.main(args) == 0 and len(starts) == 1  # finished with these settings: kept
    assert "already finished" in capsys.readouterr().out
    RunPaths(run).done.unlink()  # as a kill after the last commit leaves it
    assert cli.main(args) == 0 and starts[1:] == [(True, False)]
    assert RunPaths(run).done.is_file()
    assert cli.main(args + ["--set", "lr=0.5"]) == 2 and len(starts) == 2
    assert "lr: saved 0.001, now 0.5" in capsys.readouterr().err
    other = tmp_path / "other_data"
    write_dataset(other, n_train=24, n_val=12, n_test=5, test_len=12, with_gt=True)
    assert cli.main(args + ["--data", str(other)]) == 2 and len(starts) == 2  # other data is another run
    assert "data_root: saved" in capsys.readouterr().err


@pytest.mark.parametrize(("settings", "extra_module"), [
    ({"prior": "learned"}, "Prior_Predictor."),
])
def test_model_options_train_resume_and_predict(data_root, tmp_path, monkeypatch, capsys, settings, extra_module):
    """A learned prior: the run trains, an interrupted run resumes to the same weights as an
    uninterrupted one, and it predicts (z from the learned prior)."""
    args = ["train", "--profile", "smoke", "--data", str(data_root), "--set", "val_vi_len=12", "--quiet"]
    for name, value in settings.items():
        args += ["--set", f"{name}={value}"]
    assert cli.main([*args, "--run-dir", str(tmp_path / "whole")]) == 0

    real_ratio = train_module.teacher_forcing_ratio

    def interrupt_at_epoch_1(epoch, *rest):
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C at the start of epoch 2
        return real_ratio(epoch, *rest)

    monkeypatch.setattr(train_module, "teacher_forcing_ratio", interrupt_at_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        cli.main([*args, "--run-dir", str(tmp_path / "cut")])
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_ratio)
    assert cli.main(["train", "--resume", "--run-dir", str(tmp_path / "cut"), "--quiet"]) == 0

    whole = load_checkpoint(tmp_path / "whole/checkpoints/last.pt")
    cut = load_checkpoint(tmp_path / "cut/checkpoints/last.pt")
    assert all(cut["config"][name] == value for name, value in settings.items()) and cut["epoch"] == 2
    assert extra_module is None or any(name.startswith(extra_module) for name in cut["model"])
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, cut["model"][name]), name
    assert without_timing(read_rows(tmp_path / "cut" / "train_log.csv")) == without_timing(
        read_rows(tmp_path / "whole" / "train_log.csv"))
    assert all(math.isfinite(float(r["train_kl"])) for r in read_rows(tmp_path / "cut" / "train_log.csv"))

    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "cut"), "--z", "zero", "--no-gif"]) == 0
    assert "repeat-first-frame baseline" in capsys.readouterr().out
    zero = np.load(tmp_path / "cut/test/predictions.npy")
    assert zero.shape == (5, 12, 3, 32, 64)
    sampled = predict_test(tmp_path / "cut", z_mode="prior", out_dir=tmp_path / "sampled", gifs=False).frames
    assert not np.array_equal(sampled, zero)


def test_cli_help_and_light_commands_do_not_load_torch():
    """`python -m lab4 --help`, `config` and friends answer at once; bench and strategies still parse."""
    code = ("import sys\n"
            "from lab4 import cli\n"
            "assert cli.main(['config', '--profile', 'smoke']) == 0\n"
            "try:\n"
            "    cli.main(['--help'])\n"
            "except SystemExit as exit:\n"
            "    assert exit.code == 0\n"
            "assert 'torch' not in sys.modules, 'torch was loaded'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bench" in done.stdout and "strategies" in done.stdout
    for command in ("bench", "strategies"):
        done = subprocess.run([sys.executable, "-m", "lab4", command, "--help"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and f"python -m lab4 {command}" in done.stdout, done.stderr


RETIRED = {"reference": "first", "reference_label": True, "paint_weight": 1.0, "mask_weight": 1.0,
           "mask_target": "helps"}


@pytest.mark.parametrize("name, value", RETIRED.items())
def test_a_retired_option_is_an_unknown_config_field(name, value, capsys):
    """The first-frame / composite options are gone: a config, a --set or a plan naming one stops in one line."""
    with pytest.raises(ValueError, match=rf"^unknown config field\(s\): {name}$"):
        make_config("smoke", {name: value})
    assert cli.main(["config", "--profile", "smoke", "--set", f"{name}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such config field" in err


@pytest.mark.parametrize("name, value", [("output", "composite"), ("clip_mode", "spread")])
def test_a_retired_choice_is_refused(name, value):
    with pytest.raises(ValueError, match=f"config field {name}='{value}': expected one of"):
        make_config("smoke", {name: value})


def test_a_run_saved_before_the_retirement_still_reads(tmp_path):
    """A run saved with the retired fields at the values every run has now reads as it was; one that
    used a retired option names its fields as unknown."""
    from lab4.runs.rules import RETIRED_FIELDS, config_differences, load_run_config

    cfg = make_config("smoke")
    (tmp_path / "old.json").write_text(json.dumps({**cfg.to_dict(), **RETIRED_FIELDS}))
    assert load_run_config(tmp_path / "old.json") == cfg
    assert config_differences({**cfg.to_dict(), **RETIRED_FIELDS}, cfg) == ""
    (tmp_path / "first.json").write_text(json.dumps({**cfg.to_dict(), **RETIRED_FIELDS, "reference": "first"}))
    with pytest.raises(ValueError, match=r"^unknown config field\(s\): reference$"):
        load_run_config(tmp_path / "first.json")
    assert "unknown config field(s): reference" in config_differences(
        {**cfg.to_dict(), **RETIRED_FIELDS, "reference": "first"}, cfg)


def test_a_budget_in_updates_does_the_same_work_on_any_data(data_root, tmp_path, make_dataset, capsys):
    """max_iters fixes the number of updates, whatever the number of clips the data holds."""
    bigger = make_dataset(n_train=60, n_val=12, n_test=5, test_len=12).root
    for name, root in (("small", data_root), ("big", bigger)):
        result = train(smoke(root, max_iters=9, num_epoch=2), tmp_path / name, progress=True)
        iters = read_rows(RunPaths(tmp_path / name).iter_log)
        assert int(iters[-1]["iteration"]) == 9, name
        assert [int(r["epoch"]) for r in result.epochs] == [1, 2]
        out = capsys.readouterr().out
        assert "budget: 9 updates (the profile's budget), in 2 epochs" in out, out
    # An epoch budget follows the data: twice the clips, twice the updates.
    train(smoke(data_root), tmp_path / "epochs", progress=True)
    assert "budget: 2 epochs of the data's 6 clips = 6 updates" in capsys.readouterr().out


def test_a_budget_in_updates_refuses_what_shortens_epochs(data_root):
    with pytest.raises(ValueError, match="max_iters=10: partial and fast_train"):
        smoke(data_root, max_iters=10, partial=0.5)
    with pytest.raises(ValueError, match="at least one update per epoch"):
        smoke(data_root, max_iters=1, num_epoch=2)
