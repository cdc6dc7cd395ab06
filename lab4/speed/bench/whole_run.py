"""`lab4 bench --whole-run`: a profile's whole run with the naive step and rollouts, and with ours."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import torch

from lab4.config import make_config
from lab4.speed.bench.naive import naive_rollouts, naive_train_step_as_trainer


def whole_runs(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """A profile's whole run (training with its validations, then the test rollouts) twice, naive and ours.

    What `make` does once per ablation: the naive run swaps lab4's training step and rollouts
    for the naive reference (`naive_train_step`, `naive_rollout` per sequence) and changes
    nothing else (data, sampler, schedules, checkpoints, scoring); both start from the same
    seed and run in fp32, the naive loop's precision.
    """
    import tempfile
    from unittest import mock

    # Here, not at the top: lab4.sweep.experiment reads runs back with pandas, which the rest of the bench
    # and the GPU check (lab4.speed.gpucheck) run without.
    from lab4.sweep.experiment import run_test, run_training

    overrides: dict[str, Any] = {"device": args.device, "precision": "fp32"}
    if args.whole_run_epochs:
        overrides["num_epoch"] = args.whole_run_epochs
    if args.data:
        overrides["data_root"] = args.data
    cfg = make_config(args.whole_run, overrides)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    log(f"whole runs: profile {args.whole_run}, {cfg.num_epoch} epoch(s), data {cfg.data_root}; "
        "ours first, then naive")
    patches = {"ours": [], "naive": [mock.patch("lab4.train.train_step", naive_train_step_as_trainer),
                                     mock.patch("lab4.evaluate.rollout", naive_rollouts),
                                     mock.patch("lab4.predict.rollout", naive_rollouts)]}
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="lab4-bench-") as tmp:
        for name, active in patches.items():
            for patch in active:
                patch.start()
            try:
                start = time.perf_counter()
                run = run_training(cfg, Path(tmp) / name, existing="restart", progress=False)
                trained = time.perf_counter()
                test = run_test(run.root, gifs=False)
                done = time.perf_counter()
            finally:
                for patch in active:
                    patch.stop()
            epochs = run.epochs
            rows[name] = {
                "train_s": trained - start, "test_s": done - trained, "total_s": done - start,
                "final_val_psnr": float(epochs["val_psnr"].iloc[-1]),
                "baseline_psnr": float(epochs["baseline_psnr"].iloc[-1]),
                "test_psnr": test.score["model"]["overall"] if test.score else None,
            }
            log(f"  {name}: {rows[name]['total_s']:.1f} s")
    return {"profile": args.whole_run, "epochs": cfg.num_epoch, "data": str(cfg.data_root),
            "threads": torch.get_num_threads(), "runs": rows,
            "speedup": rows["naive"]["total_s"] / rows["ours"]["total_s"],
            "train_speedup": rows["naive"]["train_s"] / rows["ours"]["train_s"]}


def format_whole_runs(whole: dict[str, Any]) -> str:
    lines = [f"whole runs: profile {whole['profile']}, {whole['epochs']} epoch(s), data {whole['data']}, "
             f"{whole['threads']} threads (training with a validation rollout per epoch, then the test rollouts)",
             f"  {'':6} {'train+val s':>12} {'test s':>8} {'total s':>8} {'final val PSNR':>15} {'baseline':>9} "
             f"{'test PSNR':>10}"]
    for name, row in whole["runs"].items():
        test = "n/a" if row["test_psnr"] is None else f"{row['test_psnr']:.2f}"
        lines.append(f"  {name:6} {row['train_s']:12.1f} {row['test_s']:8.1f} {row['total_s']:8.1f} "
                     f"{row['final_val_psnr']:15.2f} {row['baseline_psnr']:9.2f} {test:>10}")
    lines.append(f"ours: the whole run {whole['speedup']:.2f}x as fast as naive (training with validations "
                 f"{whole['train_speedup']:.2f}x)")
    return "\n".join(lines)
