"""`python -m lab4 bench` runs end to end on tiny settings and writes bench.json (no timing claims)."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab4.cli import main
from lab4.model import VideoCVAE
from lab4.rollout import rollout
from lab4.speed.bench import naive_rollout

TINY = ["--sizes", "smoke", "--batch", "2", "--clip", "4", "--reps", "2", "--warmup", "1",
        "--rollout-frames", "5", "--sequences", "2", "--threads", "1", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_bench_writes_json_with_expected_keys(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--precision", "fp32,bf16", "--channels-last", "on",
                 "--modes", "tf,free", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "naive" in printed and "x the naive loop" in printed and "batched" in printed

    result = json.loads(out.read_text())
    assert set(result) >= {"settings", "env", "train", "rollout", "ratios", "train_ratio",
                           "rollout_ratio_batched_vs_sequential"}
    assert result["settings"]["batch"] == 2 and result["settings"]["clip"] == 4
    assert result["settings"]["predicted_frames_per_step"] == 6
    assert set(result["env"]) >= {"device", "device_name", "torch", "threads", "allocator",
                                  "peak_rss_mb_lifetime"}
    assert result["env"]["threads"] == 1

    variants = [v["name"] for v in result["settings"]["variants"]]
    assert variants == ["ours fp32 channels_last", "ours bf16 channels_last"]
    assert set(result["train"]) == {"tf", "free"}
    for section in result["train"].values():
        assert list(section) == ["naive", *variants]
        for row in section.values():
            assert set(row) >= {"frames_per_s", "step_s", "ratio_vs_naive", "peak_mem_mb", "saved_activations_mb",
                                "cpu_user_s", "cpu_sys_s"}
            assert set(row["frames_per_s"]) == {"median", "min", "max", "q1", "q3"}
            assert len(row["step_s"]) == 2 and all(t > 0 for t in row["step_s"])
            assert row["frames_per_s"]["min"] <= row["frames_per_s"]["median"] <= row["frames_per_s"]["max"]
        assert section["naive"]["ratio_vs_naive"] == pytest.approx(1.0)
        # bf16 autocast halves what autograd keeps for backward (at least most of it).
        assert section["ours bf16 channels_last"]["saved_activations_mb"] < section["naive"]["saved_activations_mb"]

    rollouts = result["rollout"]
    expected = ["naive: 1 seq", "naive: 2 sequential"]
    for name in variants:
        expected += [f"{name}: 1 seq", f"{name}: 2 sequential", f"{name}: 2 batched"]
    assert list(rollouts) == expected
    assert rollouts["naive: 2 sequential"]["frames"] == 2 * 4
    assert rollouts["naive: 1 seq"]["frames"] == 4
    assert len(rollouts["naive: 1 seq"]["seconds"]) == 2  # one per sequence
    for row in rollouts.values():
        assert row["frames_per_s"]["median"] > 0 and row["peak_mem_mb"] > 0 and row["ratio_vs_naive"] > 0

    assert list(result["ratios"]) == variants
    for ratios in result["ratios"].values():
        assert set(ratios) == {"train", "rollout_batched_vs_naive_sequential", "rollout_batched_vs_own_sequential",
                               "train_ceiling", "rollout_ceiling", "train_conv_bound", "rollout_conv_bound"}

    # FLOPs are counted, not timed: teacher forced, ours encodes each frame once where the naive
    # loop encodes it as the current frame and again as the next step's previous one; a rollout
    # does the same work per frame both ways.
    tf = result["train"]["tf"]
    assert 0 < tf["ours fp32 channels_last"]["gflop_per_frame"] < tf["naive"]["gflop_per_frame"]
    assert rollouts["naive: 1 seq"]["gflop_per_frame"] == pytest.approx(
        rollouts["ours fp32 channels_last: 2 batched"]["gflop_per_frame"])
    for row in [*tf.values(), *rollouts.values()]:
        assert row["gflop_per_s"] == pytest.approx(row["gflop_per_frame"] * row["frames_per_s"]["median"])
    assert set(result["peak_gflops"]) == {"naive", *variants} and min(result["peak_gflops"].values()) > 0
    # The ceiling: the variant's counted FLOPs at the probe's rate, against the naive loop's speed.
    fp32 = result["ratios"]["ours fp32 channels_last"]
    assert fp32["train_ceiling"] == pytest.approx(
        result["peak_gflops"]["ours fp32 channels_last"] / tf["ours fp32 channels_last"]["gflop_per_frame"]
        / tf["naive"]["frames_per_s"]["median"])
    assert "ceiling at the device peak" in printed and "GFLOP per predicted frame" in printed
    # The convolutions' profiled time: part of each row's time, and the bound it sets.
    profiled = [*tf.values(), *(row for name, row in rollouts.items() if name.startswith("naive") or "batched" in name)]
    for row in profiled:
        assert 0 < row["conv_share"] < 1
    assert rollouts["ours fp32 channels_last: 2 sequential"]["conv_share"] is None  # not profiled
    assert fp32["train_conv_bound"] == pytest.approx(fp32["train"] / tf["ours fp32 channels_last"]["conv_share"])
    assert fp32["rollout_conv_bound"] == pytest.approx(
        fp32["rollout_batched_vs_naive_sequential"] / rollouts["ours fp32 channels_last: 2 batched"]["conv_share"])
    assert "bound by its convolutions" in printed and "conv %" in printed
    headline = result["ratios"]["ours fp32 channels_last"]
    assert result["train_ratio"] == headline["train"]
    assert result["train_ratio"] == result["train"]["tf"]["ours fp32 channels_last"]["ratio_vs_naive"]
    assert result["rollout_ratio_batched_vs_sequential"] == headline["rollout_batched_vs_naive_sequential"]


def test_bench_rejects_bad_options(tmp_path: Path) -> None:
    assert main(["bench", *TINY, "--precision", "fp8", "--out", str(tmp_path / "b.json")]) == 2
    assert main(["bench", *TINY, "--modes", "sometimes", "--out", str(tmp_path / "b.json")]) == 2
    assert not (tmp_path / "b.json").exists()


def test_naive_rollout_matches_project_rollout() -> None:
    """Same weights, same noise stream: the template loop and the batched rollout give the same frames."""
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16)
    gen = torch.Generator().manual_seed(5)
    first = torch.rand((1, 3, 32, 64), generator=gen)
    labels = torch.rand((1, 6, 3, 32, 64), generator=gen)
    naive = naive_rollout(model, first[0], labels[0], torch.Generator().manual_seed(9))
    ours = rollout(model, first, labels, generator=torch.Generator().manual_seed(9))[0]
    torch.testing.assert_close(ours, naive, rtol=1e-4, atol=1e-5)


def test_bench_skips(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--precision", "bf16", "--channels-last", "both", "--skip-rollouts",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rollout"] == {} and "rollout_ratio_batched_vs_sequential" not in result
    assert list(result["train"]["tf"]) == ["naive", "ours bf16 channels_last", "ours bf16 NCHW"]

    assert main(["bench", *TINY, "--precision", "fp32", "--skip-train", "--skip-sequential-ours",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["train"] == {} and "train_ratio" not in result
    assert list(result["rollout"]) == ["naive: 1 seq", "naive: 2 sequential", "ours fp32 channels_last: 1 seq",
                                       "ours fp32 channels_last: 2 batched"]
    assert set(result["ratios"]["ours fp32 channels_last"]) == {"rollout_batched_vs_naive_sequential", "rollout_ceiling",
                                                                "rollout_conv_bound"}


@pytest.mark.timeout(120)
def test_python_dash_m_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "lab4", "bench", *TINY, "--reps", "1", "--warmup", "0",
                           "--precision", "auto", "--skip-sequential-ours", "--out", str(out)],
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr
    assert "training" in done.stdout and "batched" in done.stdout
    assert json.loads(out.read_text())["settings"]["sizes"] == "smoke"


def test_bench_times_the_templates_method_at_any_profiles_widths() -> None:
    """--sizes takes a profile's widths only, not its other choices (quick's sigmoid output, say):
    the naive template loop and ours share weights at those widths."""
    from lab4.speed.bench import add_commands, bench_config
    from lab4.config import PROFILES, make_config
    from lab4.train import build_model

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    for name in PROFILES:
        args = parser.parse_args(["bench", "--sizes", name])
        cfg = bench_config(args)
        assert [getattr(cfg, f) for f in ("F_dim", "L_dim", "N_dim", "D_out_dim")] == \
            [getattr(make_config(name), f) for f in ("F_dim", "L_dim", "N_dim", "D_out_dim")]
        naive = VideoCVAE(cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim, output=cfg.output, prior=cfg.prior)
        build_model(cfg).load_state_dict(naive.state_dict())  # the same weights fit both


def test_whole_run_trains_the_same_model_naive_and_ours(tmp_path: Path, tiny_data: Path, capsys) -> None:
    """--whole-run trains a profile twice, the naive step and rollouts swapped in once, on the same
    data and seed. The two trainings draw their noise in another order, so their scores are two
    draws, not one number: after one smoke epoch the val PSNR of seeds 0-7 spans 4-18 dB, which
    no margin worth asserting covers. What is the same by construction is asserted here; that the
    two steps compute the same loss and gradients with the same noise is tests/test_equivalence.py's."""
    out = tmp_path / "whole.json"
    assert main(["bench", "--whole-run", "smoke", "--whole-run-epochs", "1", "--data", str(tiny_data),
                 "--threads", "1", "--out", str(out)]) == 0
    assert "as fast as naive" in capsys.readouterr().out
    whole = json.loads(out.read_text())["whole_run"]
    assert whole["profile"] == "smoke" and whole["epochs"] == 1
    ours, naive = whole["runs"]["ours"], whole["runs"]["naive"]
    for row in (ours, naive):
        assert row["train_s"] > 0 and row["test_s"] > 0 and row["test_psnr"] is not None
    assert all(math.isfinite(row["final_val_psnr"]) for row in (ours, naive))
    assert naive["baseline_psnr"] == ours["baseline_psnr"]  # the same val video, scored the same way
    assert whole["speedup"] == pytest.approx(naive["total_s"] / ours["total_s"])


def test_compile_and_skip_profile_options() -> None:
    """--compile names each variant so (GPU use; not timed here: compiling takes minutes on this CPU);
    --skip-profile leaves the CPU profile of the convolutions' share out."""
    import torch

    from lab4.speed.bench import add_commands, parse_variants

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["bench", "--precision", "fp32,bf16", "--compile"])
    assert [v.name for v in parse_variants(args, torch.device("cpu"))] == [
        "ours fp32 channels_last compiled", "ours bf16 channels_last compiled"]
    args = parser.parse_args(["bench", *TINY, "--precision", "fp32", "--skip-profile"])
    assert [v.name for v in parse_variants(args, torch.device("cpu"))] == ["ours fp32 channels_last"]


def test_skip_profile_leaves_conv_share_out(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--precision", "fp32", "--skip-profile", "--reps", "1", "--skip-sequential-ours",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert all(row["conv_share"] is None for row in result["train"]["tf"].values())
    assert all(row["conv_share"] is None for row in result["rollout"].values())
    assert "train_conv_bound" not in result["ratios"]["ours fp32 channels_last"]
