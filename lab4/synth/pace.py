"""`python -m lab4 pace [DIR]`: how fast a dataset is learned, measured by one fixed recipe.

A dataset's learning pace decides whether a CPU budget chosen on it transfers to another: version 3
of the default studio data was learned about three times faster than real footage (issue 34), so
every budget chosen on it was too small there; version 4 was chosen by this command. It trains the
reference recipe (RECIPE: the `quick` profile as of commit 457b1d3, pinned here field by field so
that later changes to `quick` do not move the yardstick) on a dataset, once per seed, and prints
the val PSNR gain over the repeat-first-frame baseline after each number of updates, beside the
real footage's figures (FOOTAGE_GAIN_DB).

Per seed, two runs of lab4.train under RUN_ROOT/<dataset folder's name>/seed<N>/ (--out, default
runs/pace):
- `updates1200`: the recipe, validated after each of its 6 epochs (200, 400, ..., 1,200 updates);
- `updates300`: the same recipe with a quarter of the budget (SHORT_SHARE), validated at its end.
  Its cosine learning rate decays over its own 300 updates, so it is not the longer run after
  300: it is how the report's ablations train (their `kl_none` is this recipe at 300 updates), and
  how the footage's 300-update figure was measured.
Validation uses the project's default label normalisation (config `label_norm`, not pinned here);
the table says which. A run that finished with the same settings is kept, an interrupted one goes
on from its last checkpoint (the `resume` mode of lab4.runs.EXISTING_MODES), so a rerun only trains
what is missing.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab4.commands import LAZY_COMMANDS
from lab4.config import Config, from_dict, parse_overrides
from lab4.data import check_layout
from lab4.runs.results import RunData
from lab4.runs.rules import how_to_start
from lab4.train import train

# The reference recipe: every field in which `quick` (config.PROFILES["quick"] over Config's
# defaults) differed from Config() at commit 457b1d3 (2026-12-06), as `python -m lab4 config
# --profile quick` printed it, written out so that no later change to `quick` or its parts moves
# it. One exception: val_every is 1 here (quick's is 2), for a point per epoch; validation draws
# its z from a generator of its own, so it leaves the updates unchanged. Not pinned: the fields
# equal to Config()'s (the template's defaults) and the label normalisation (label_norm,
# train_label_norm), whose defaults the project chooses.
RECIPE: dict[str, Any] = {
    "train_vi_len": 8,
    "clip_mode": "random",
    "F_dim": 32,
    "L_dim": 16,
    "D_out_dim": 48,
    "output": "sigmoid",
    "batch_size": 1,
    "num_epoch": 6,
    "max_iters": 1200,
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "tfr": 0.0,
    "tfr_sde": 3,
    "tfr_d_step": 0.15,
    "tf_granularity": "batch",
    "kl_anneal_type": "None",
    "kl_anneal_cycle": 4,
    "kl_anneal_step": "iteration",
    "val_every": 1,
}
# The short run's budget, a share of the recipe's: 300 of its 1,200 updates, the report's ablations'.
SHORT_SHARE = 0.25

# The real footage's val PSNR gain over repeat-first-frame, in dB, after N updates of this recipe
# (low, high): issue 34's table, its per-frame row (real footage of the Lab 4 kind, not shipped:
# 800 training and 200 val frames at 64 x 32, baseline 24.27 dB; each label normalised by its own
# statistics at generation, label_norm=frame). 300: the ablations' kl_none (this recipe with a
# 300-update budget), seeds 0-2; 600, 800, 1,200: the 3rd, 4th and 6th epochs of one `quick` run.
FOOTAGE_GAIN_DB: dict[int, tuple[float, float]] = {300: (-1.4, -1.0), 600: (2.8, 2.8), 800: (4.9, 4.9),
                                                   1200: (6.5, 6.5)}
FOOTAGE_FROM_SHORT_RUNS = {300}  # the figures that are the end of a short run, not a point of a longer one
FOOTAGE_RUNS = {300: "3 seeds"}  # the others: one run
FOOTAGE_BASELINE_DB = 24.27

# Fields the command sets itself: the dataset (DIR) and the seed (--seeds).
OWN_FIELDS = {"data_root": "DIR", "seed": "--seeds"}
# Fields that change how a run runs, not what it learns: --set may name them and keep the yardstick.
RUNNING_FIELDS = ("threads", "device", "precision", "channels_last", "log_every", "per_save")


@dataclass(frozen=True)
class PaceRun:
    """One training of the pace: its seed, folder, config, and whether it is the short run."""

    seed: int
    run_dir: Path
    cfg: Config
    short: bool


@dataclass(frozen=True)
class Gain:
    """The val PSNR gain over the baseline of one validation of one run, after `updates` updates."""

    seed: int
    updates: int
    short: bool            # the end of the short run, not a point on the way of the full one
    gain_db: float
    baseline_db: float


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; one line naming --seeds otherwise."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: expected distinct seeds of 0 or more, e.g. 0,1,2")
    return seeds


def recipe_config(data_root: str, seed: int = 0, overrides: dict[str, Any] | None = None) -> Config:
    """The reference recipe on `data_root` for `seed` (Config's defaults, RECIPE, then `overrides`)."""
    for name, where in OWN_FIELDS.items():
        if name in (overrides or {}):
            raise ValueError(f"--set {name}=...: the pace sets it from {where}")
    return from_dict({**Config().to_dict(), **RECIPE, **(overrides or {}), "data_root": data_root, "seed": seed})


def short_config(cfg: Config) -> Config:
    """The recipe at SHORT_SHARE of its budget, validated at its end only."""
    updates = int(cfg.max_iters * SHORT_SHARE)
    if updates < cfg.num_epoch:
        raise ValueError(f"--set max_iters={cfg.max_iters}: the short run takes {SHORT_SHARE:.0%} of it, {updates} "
                         f"updates, fewer than its num_epoch={cfg.num_epoch} epochs")
    return from_dict({**cfg.to_dict(), "max_iters": updates, "val_every": cfg.num_epoch})


def plan_runs(data_root: Path, seeds: list[int], out: Path, overrides: dict[str, Any] | None = None) -> list[PaceRun]:
    """Every run of the pace, checked (data, seeds, settings) before any trains."""
    check_layout(data_root, ("train", "val"))
    if not seeds:
        raise ValueError("--seeds: expected at least one seed")
    runs = []
    for seed in seeds:
        cfg = recipe_config(str(data_root), seed, overrides)
        if not cfg.max_iters:
            raise ValueError("--set max_iters=0: the pace counts updates; expected a budget in updates")
        folder = out / dataset_name(data_root) / f"seed{seed}"
        short = short_config(cfg)
        runs += [PaceRun(seed, folder / f"updates{cfg.max_iters}", cfg, short=False),
                 PaceRun(seed, folder / f"updates{short.max_iters}", short, short=True)]
    return runs


def dataset_name(data_root: Path) -> str:
    return Path(data_root).resolve().name


def train_runs(runs: list[PaceRun], force: bool = False, progress: bool = True) -> None:
    """Train each run that has not finished with its settings (all of them with `force`)."""
    for run in runs:
        start = how_to_start(run.run_dir, run.cfg, "restart" if force else "resume")
        what = f"seed {run.seed}, {run.cfg.max_iters} updates ({run.run_dir})"
        if start.keep:
            print(f"{what}: finished earlier, kept", flush=True)
            continue
        print(f"{what}: {'resuming' if start.resume else 'training'}", flush=True)
        train(run.cfg, run.run_dir, resume=start.resume, force=start.force, progress=progress)


def gains(runs: list[PaceRun]) -> list[Gain]:
    """Every validation of the runs (train_log.csv), as its gain over the baseline after its updates."""
    found = []
    for run in runs:
        for row in RunData(run.run_dir).epochs.itertuples():
            if math.isnan(row.val_psnr):
                continue
            # With a budget in updates, epoch e ends after max_iters * e // num_epoch of them (lab4.train).
            updates = run.cfg.max_iters * int(row.epoch) // run.cfg.num_epoch
            found.append(Gain(run.seed, updates, run.short, float(row.val_psnr - row.baseline_psnr),
                              float(row.baseline_psnr)))
    return found


def footage_text(updates: int, short: bool) -> str:
    """The footage's gain after `updates`, where it was measured as this row was (see FOOTAGE_GAIN_DB)."""
    if updates not in FOOTAGE_GAIN_DB or short != (updates in FOOTAGE_FROM_SHORT_RUNS):
        return ""
    low, high = FOOTAGE_GAIN_DB[updates]
    value = f"{low:+.1f} dB" if low == high else f"{low:+.1f} to {high:+.1f} dB"
    return f"{value} ({FOOTAGE_RUNS.get(updates, 'one run')})"


def gain_text(values: list[float]) -> str:
    """'+5.12 ± 0.40 dB (+4.80 / +5.30 / +5.26)': mean ± sample sd over seeds, and each seed's."""
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:+.2f} dB (one seed)"
    seeds = " / ".join(f"{v:+.2f}" for v in values)
    return f"{mean:+.2f} ± {float(np.std(values, ddof=1)):.2f} dB ({seeds})"


def format_pace(found: list[Gain], data_root: Path, seeds: list[int], cfg: Config) -> str:
    """The table: one row per number of updates, this data's gain beside the footage's."""
    rows = []
    for updates, short in sorted({(g.updates, g.short) for g in found}):
        values = [g.gain_db for seed in seeds for g in found
                  if g.seed == seed and g.updates == updates and g.short == short]
        label = f"{updates:,}" + (" (short run)" if short else "")
        rows.append((label, gain_text(values), footage_text(updates, short)))
    header = ("updates", "this data: mean ± sd over seeds (each seed)", "real footage")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    lines = ["val PSNR gain over repeat-first-frame after N updates of the reference recipe (lab4.synth.pace.RECIPE)",
             f"on {data_root}, seeds {', '.join(map(str, seeds))}, validated with label_norm={cfg.label_norm} "
             f"(the footage's figures: frame)"]
    lines += [f"{a:>{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in [header, *rows]]
    baselines = sorted({round(g.baseline_db, 2) for g in found})
    lines.append(f"repeat-first-frame baseline: {', '.join(f'{b:.2f}' for b in baselines)} dB on this data's val "
                 f"video; {FOOTAGE_BASELINE_DB:.2f} dB on the footage's")
    return "\n".join(lines)


def cmd_pace(args: argparse.Namespace) -> int:
    data_root = Path(args.root or Config().data_root)
    seeds = parse_seeds(args.seeds)
    overrides = parse_overrides(args.set or [])
    runs = plan_runs(data_root, seeds, Path(args.out), overrides)
    changed = sorted(name for name in overrides if name not in RUNNING_FIELDS)
    if changed:
        print(f"note: --set {', '.join(changed)}: not the reference recipe as pinned (lab4.synth.pace.RECIPE), so "
              "these gains are not the yardstick's", flush=True)
    train_runs(runs, force=args.force, progress=not args.quiet)
    print()
    print(format_pace(gains(runs), data_root, seeds, runs[0].cfg))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pace", help=LAZY_COMMANDS["pace"][1], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", nargs="?", metavar="DIR",
                   help=f"a dataset root in the Lab 4 layout (default {Config().data_root})")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one pair of runs each (default 0,1,2)")
    p.add_argument("--out", default="runs/pace", metavar="RUN_ROOT",
                   help="where the runs go: RUN_ROOT/<dataset folder's name>/seed<N>/updates<budget> "
                        "(default runs/pace)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field on top of the recipe, e.g. --set threads=1 (repeatable); a "
                        "field of the recipe makes it another yardstick")
    p.add_argument("--force", action="store_true", help="train every run again, finished or not")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=cmd_pace)
