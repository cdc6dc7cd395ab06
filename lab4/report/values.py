"""The report draft's numbers and quotes as plain Python data: every number of the results table
(lab4.report.tables, as `python -m lab4 table` prints it) per plan run, with its data, seeds and
repeat-first-frame baseline; the settings the runs used; and the project's own code for the
training step, the reparameterization and the schedules, read from the source when the report is built."""

from __future__ import annotations

import importlib
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lab4.report import tables
from lab4.report.book import ReportBook
from lab4.workspace import display_path

# name in results.typ: (column of tables.results_table, the name of its baseline or None, decimals)
METRICS: dict[str, tuple[str, str | None, int]] = {
    "val_psnr": ("val_psnr_mean", "baseline_psnr", 2),
    "val_psnr_1_600": ("val_psnr_1_600", "baseline_psnr_1_600", 2),
    "val_psnr_last": ("val_psnr_last", "baseline_psnr_last", 2),
    "val_ssim": ("val_ssim_mean", "baseline_ssim", 3),
    "best_val_psnr": ("best_val_psnr", "baseline_psnr", 2),
    "test_psnr": ("test_psnr", "test_baseline_psnr", 2),
    "test_ssim": ("test_ssim", "test_baseline_ssim", 3),
    "baseline_psnr": ("baseline_psnr_mean", None, 2),
    "baseline_psnr_1_600": ("baseline_psnr_1_600", None, 2),
    "baseline_psnr_last": ("baseline_psnr_last", None, 2),
    "baseline_ssim": ("baseline_ssim_mean", None, 3),
    "test_baseline_psnr": ("test_baseline_psnr", None, 2),
    "test_baseline_ssim": ("test_baseline_ssim", None, 3),
}
MODEL_METRICS = [name for name, (_, baseline, _) in METRICS.items() if baseline]

# The config fields the implementation section shows: shared ones in one table, varied ones per run.
SETTING_FIELDS = ("F_dim", "L_dim", "N_dim", "D_out_dim", "output", "prior", "background", "batch_size", "train_vi_len",
                  "val_vi_len", "num_epoch", "max_iters", "optimizer", "lr", "lr_schedule", "milestones", "gamma",
                  "weight_decay", "grad_clip", "kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio",
                  "kl_anneal_step", "kl_beta_max", "tfr", "tfr_sde", "tfr_d_step", "tf_granularity", "val_z",
                  "precision")

# (module, function): what the implementation sections quote.
QUOTED = (("lab4.step", "training_one_step"), ("lab4.model", "reparameterize"), ("lab4.model", "kl_to_standard_normal"),
          ("lab4.schedules", "teacher_forcing_ratio"), ("lab4.schedules", "teacher_forcing_draw"),
          ("lab4.schedules", "kl_beta"))


def number(value: Any) -> float | None:
    """A table cell as a float, or None where the table has NaN (not measured)."""
    value = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(value) else float(value)


def unit(metric: str) -> str:
    return " dB" if "psnr" in metric else ""


def mean_sd(mean: float | None, sd: float | None, digits: int) -> str:
    """'6.46', '6.46 ± 0.12', or 'n/a': a table cell."""
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}")


@dataclass
class RunNumbers:
    """One plan run (all its seeds): what the results table says about it, and where it came from."""

    base: str
    label: str
    settings: str
    runs: list[str]
    seeds: list[int]
    data: str
    style: str
    values: dict[str, float | None]
    sd: dict[str, float | None]
    config: dict[str, Any]
    strategy: dict[str, Any] | None = None

    @property
    def n(self) -> int:
        return len(self.runs)

    def seeds_text(self) -> str:
        seeds = ", ".join(str(s) for s in self.seeds)
        return f"seed {seeds}" if self.n == 1 else f"mean ± sd over seeds {seeds}"

    def cell(self, metric: str) -> str:
        return mean_sd(self.values[metric], self.sd[metric], METRICS[metric][2])

    def text(self, metric: str) -> str:
        """The number with its unit, seeds, repeat-first-frame baseline and data, in one phrase."""
        value = self.values[metric]
        where = f"data {self.data}, style {self.style}"
        if value is None:
            return f"n/a (not measured; {where})"
        baseline = METRICS[metric][1]
        beside = ""
        if baseline:
            base_value = self.values[baseline]
            beside = "; repeat-first-frame baseline " + (
                "n/a" if base_value is None else f"{base_value:.{METRICS[baseline][2]}f}{unit(metric)}")
        return f"{self.cell(metric)}{unit(metric)} ({self.seeds_text()}{beside}; {where})"


def run_numbers(book: ReportBook) -> list[RunNumbers]:
    """Every plan run of the sweep, with the results table's numbers (mean and sd over seeds)."""
    table = tables.results_table(book.sweep.finished, book.sweep.last_validation())
    comparison = book.compare_strategies()
    meta = book.meta
    out = []
    for _, row in table.iterrows():
        base = str(row["run"])
        runs = [str(r) for r in meta.index[meta["base"] == base]] if "base" in meta else [base]
        first = book.sweep.run(runs[0])
        styles = sorted({str((book.sweep.run(r).done or {}).get("data_style", "not recorded")) for r in runs})
        data = meta.loc[runs[0], "data_root"] if "data_root" in meta else first.config.get("data_root", "?")
        values = {name: number(row[col]) for name, (col, _, _) in METRICS.items()}
        sds = {name: number(row[f"{col}_std"]) for name, (col, _, _) in METRICS.items()}
        strategy = None
        if comparison is not None and base in comparison.index:
            stats = comparison.loc[base]
            strategy = {key: number(stats[key]) for key in ("mean", "std", "low", "high", "margin")}
            strategy.update(n=int(stats["n"]), beats_reference=bool(stats["beats_reference"]),
                            reference=book.strategy_reference)
        out.append(RunNumbers(
            base=base, label=book.base_labels.get(base, base), settings=str(row.get("settings") or ""),
            runs=runs, seeds=[int(meta.loc[r, "seed"]) for r in runs] if "seed" in meta else [0],
            data=str(data), style=" / ".join(styles), values=values, sd=sds,
            config={k: first.config[k] for k in SETTING_FIELDS if k in first.config}, strategy=strategy))
    return out


def split_settings(runs: list[RunNumbers]) -> tuple[dict[str, Any], list[str]]:
    """The settings every run shares (field: value), and the fields that differ between runs."""
    fields = [f for f in SETTING_FIELDS if any(f in r.config for r in runs)]
    shared, varied = {}, []
    for name in fields:
        seen = {repr(r.config.get(name)) for r in runs}
        if len(seen) == 1:
            shared[name] = runs[0].config.get(name)
        else:
            varied.append(name)
    return shared, varied


def setting_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(setting_text(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


@dataclass
class Quote:
    """A function of the project as its source file has it now."""

    name: str
    path: str
    first: int
    last: int
    text: str = field(repr=False)

    @property
    def where(self) -> str:
        return f"{self.path}, lines {self.first}-{self.last}"


def quote(module: str, name: str) -> Quote:
    """The source of `module.name` (inspect reads the file the module was loaded from)."""
    function = getattr(importlib.import_module(module), name)
    lines, first = inspect.getsourcelines(function)
    text = textwrap.dedent("".join(lines)).rstrip("\n")
    return Quote(name, display_path(inspect.getsourcefile(function) or module), first, first + len(lines) - 1, text)


def quotes() -> list[Quote]:
    return [quote(module, name) for module, name in QUOTED]
