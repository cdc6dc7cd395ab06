"""`python -m lab4 label-norm RUN_DIR`: a run's val PSNR under each choice of the label statistics.

The label encoder's BatchNorm sees almost-white pose images, so its variance is tiny and the
statistics it normalises with at generation move a result by several dB (config `label_norm`).
The choice does not change training (nothing of it feeds back into an update), so one run's
kept checkpoints, each validated under every choice, measure all of them at once: the same
val rollout, with the same z draws, as `train` validated at that epoch.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lab4.commands import LAZY_COMMANDS
from lab4.config import CHOICES
from lab4.device import autocast_dtype
from lab4.evaluate import validate_as_logged
from lab4.io import atomic_path
from lab4.predict import generation_label_norm, load_trained
from lab4.report.stats import format_mean_std, summarise
from lab4.report.zsampling import load_videos
from lab4.runs import RunPaths
from lab4.runs.checkpoint import committed

OUT_CSV = "label_norm.csv"  # inside the run folder


def kept_epochs(paths: RunPaths) -> list[int]:
    """The epochs a run folder holds a checkpoint of: its periodic ones and its last."""
    epochs = {int(m.group(1)) for p in paths.checkpoints.glob("epoch_*.pt")
              if (m := re.fullmatch(r"epoch_(\d+)\.pt", p.name))}
    if not paths.last.is_file():
        raise FileNotFoundError(f"{paths.last}: no checkpoint; expected a run folder that has finished an epoch")
    state = committed(paths)
    if state is not None:
        epochs.add(int(state["epoch"]))
    return sorted(epochs)


def compare_label_norms(run_dir: Path, epochs: list[int] | None = None, data_root: str | None = None,
                        choices: tuple[str, ...] = CHOICES["label_norm"]) -> pd.DataFrame:
    """One row per (epoch, choice): val PSNR and SSIM and the baseline's, as `train` would have logged them."""
    paths = RunPaths(Path(run_dir))
    rows = []
    videos = None
    for epoch in epochs or kept_epochs(paths):
        model, cfg, at = load_trained(paths.root, str(epoch))
        device = next(model.parameters()).device
        videos = videos or load_videos(cfg, "val", device, data_root)
        saved = {k: v.clone() for k, v in model.label_transformation.state_dict().items()}
        for choice in choices:
            # "precise" rewrites the BatchNorm's running buffers: every choice starts from the checkpoint's.
            model.label_transformation.load_state_dict(saved)
            label_norm = generation_label_norm(model, cfg, choice, data_root)
            # train's validation seed for that epoch, so "frame" and "running" repeat what it logged.
            result = validate_as_logged(model, cfg, at, *videos, dtype=autocast_dtype(cfg, device),
                                        label_norm=label_norm)
            rows.append({"epoch": at, "label_norm": choice, "val_psnr": result.mean_psnr,
                         "baseline_psnr": result.mean_baseline_psnr, "val_ssim": result.mean_ssim,
                         "seed": cfg.seed, "trained_with": cfg.train_label_norm})
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame) -> str:
    """Epochs down, choices across (val PSNR in dB), the baseline beside, and each choice's largest
    fall between consecutive kept checkpoints."""
    wide = table.pivot(index="epoch", columns="label_norm", values="val_psnr")
    wide = wide[[c for c in CHOICES["label_norm"] if c in wide.columns]]
    wide["baseline"] = table.groupby("epoch")["baseline_psnr"].first()
    text = wide.to_string(float_format=lambda v: f"{v:.2f}")
    largest = falls(table).set_index("label_norm")["largest_fall"]
    return text + "\nlargest fall between consecutive checkpoints (dB): " + \
        ", ".join(f"{c} {largest[c]:.2f}" for c in wide.columns if c != "baseline")


def saved_comparison(run_dir: Path, epochs: list[int] | None) -> pd.DataFrame | None:
    """RUN/label_norm.csv when it was written after the run's last checkpoint and holds every
    epoch asked for (default: every kept one) under every choice; else None (compute it)."""
    paths, out = RunPaths(run_dir), run_dir / OUT_CSV
    if not out.is_file() or not paths.last.is_file() or out.stat().st_mtime < paths.last.stat().st_mtime:
        return None
    table = pd.read_csv(out)
    wanted = set(epochs or kept_epochs(paths))
    complete = all(set(table[table["label_norm"] == c]["epoch"]) >= wanted for c in CHOICES["label_norm"])
    return table[table["epoch"].isin(wanted)] if complete else None


def falls(table: pd.DataFrame) -> pd.DataFrame:
    """Per choice, the largest fall of val PSNR between consecutive kept checkpoints of one run."""
    return (table.sort_values("epoch").groupby("label_norm")["val_psnr"]
            .agg(lambda v: float(np.max(-np.diff(v.to_numpy()), initial=0.0))).rename("largest_fall").reset_index())


def format_over_runs(tables: list[pd.DataFrame]) -> str:
    """Over several runs (seeds): per choice, the last checkpoint's val PSNR as mean ± sd with its
    95 % interval, its gain over the baseline, and the mean of each run's largest fall."""
    last = pd.concat([t[t["epoch"] == t["epoch"].max()] for t in tables])
    stats = summarise(last, "label_norm", "val_psnr")
    fall = pd.concat([falls(t) for t in tables]).groupby("label_norm")["largest_fall"].agg(["mean", "max"])
    baseline = last["baseline_psnr"].mean()
    lines = [f"over {len(tables)} runs, at each run's last checkpoint (repeat-first-frame baseline {baseline:.2f} dB):",
             "label_norm  val PSNR (dB)          95 % interval     over the baseline  largest fall between "
             "checkpoints (mean, max)"]
    for choice in [c for c in CHOICES["label_norm"] if c in stats.index]:
        row = stats.loc[choice]
        lines.append(f"{choice:<10}  {format_mean_std(row['mean'], row['std'], int(row['n'])):<21}  "
                     f"{row['low']:.2f} to {row['high']:.2f}  {row['mean'] - baseline:+17.2f}  "
                     f"{fall.loc[choice, 'mean']:.2f}, {fall.loc[choice, 'max']:.2f} dB")
    return "\n".join(lines)


def cmd_label_norm(args: argparse.Namespace) -> int:
    epochs = [int(e) for e in args.epochs.split(",")] if args.epochs else None
    tables = []
    for run_dir in map(Path, args.run_dir):
        out = run_dir / OUT_CSV
        table = None if args.force or args.data else saved_comparison(run_dir, epochs)
        if table is None:
            table = compare_label_norms(run_dir, epochs, args.data)
            with atomic_path(out) as tmp:
                table.to_csv(tmp, index=False)
        print(f"val PSNR (dB) of {run_dir} per kept checkpoint under each label_norm (frame: the template's "
              "Tester.py); baseline: repeat the first frame")
        print(format_comparison(table))
        print(f"wrote {out}\n")
        tables.append(table)
    if len(tables) > 1:
        print(format_over_runs(tables))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label-norm", help=LAZY_COMMANDS["label-norm"][1])
    p.add_argument("run_dir", nargs="+", help="run folders made by `lab4 train` (several: a summary over them, "
                                              "e.g. one per seed)")
    p.add_argument("--epochs", help="comma-separated epochs (default: every kept checkpoint and the last)")
    p.add_argument("--data", help="dataset root (default: the run's data_root)")
    p.add_argument("--force", action="store_true",
                   help="validate again even where RUN/label_norm.csv, newer than the run's last checkpoint, has it")
    p.set_defaults(func=cmd_label_norm)
