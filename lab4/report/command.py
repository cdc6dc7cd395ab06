"""`python -m lab4 report` (what `make report` calls): the analysis notebook executed headless with
papermill on a sweep (the latest by default), so the notebook and the report cannot drift apart, then
the Typst report draft (lab4.report.draft) from the figures it saved; `python -m lab4 table`: a
sweep's results as markdown."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

from lab4.report import stats, tables
from lab4.report.book import FIGURE_NAMES, README_FIGURE, REPORT_FILE, ReportBook
from lab4.report.draft import DraftError, write_draft
from lab4.runs.results import SweepData, latest_sweep, load_sweep
from lab4.workspace import display_path, resolve

ANALYSIS_NOTEBOOK = Path("notebooks") / "analysis.ipynb"


# ---------------------------------------------------------------------------------------
# `python -m lab4 report`: the analysis notebook, headless
# ---------------------------------------------------------------------------------------


def run_analysis(sweep_dir: Path, figures_dir: Path | None, notebook: Path | None = None,
                 output: Path | None = None, progress: bool = True) -> Path:
    """Execute notebooks/analysis.ipynb on a sweep with papermill; returns the executed notebook
    (default <sweep>/analysis.ipynb, so its links to the runs' GIFs are relative to the sweep)."""
    import papermill as pm

    notebook = Path(notebook or resolve(ANALYSIS_NOTEBOOK))
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: the analysis notebook is missing (expected notebooks/analysis.ipynb)")
    output = Path(output or sweep_dir / "analysis.ipynb")
    parameters = {"sweep_dir": str(sweep_dir.resolve()), "figures_dir": str(figures_dir.resolve()) if figures_dir else ""}
    pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                        progress_bar=progress, cwd=str(output.parent.resolve()))
    return output


def cmd_report(args: argparse.Namespace) -> int:
    sweep_dir = resolve(args.sweep) if args.sweep else latest_sweep(resolve("runs"))
    figures_dir = resolve(args.figures)
    if not getattr(args, "draft_only", False):
        code = run_figures(args, sweep_dir, figures_dir)
        if code:
            return code
    report_dir = getattr(args, "report_dir", None)
    return draft(sweep_dir, figures_dir, resolve(report_dir) if report_dir else figures_dir.parent / "report")


def draft(sweep_dir: Path, figures_dir: Path, report_dir: Path) -> int:
    """The Typst draft (lab4.report.draft): results.typ refreshed, report.typ created if missing, report.pdf."""
    try:
        made = write_draft(sweep_dir, figures_dir, report_dir)
    except DraftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    mine = (f"; created {display_path(made.report)} (yours to edit: never overwritten)" if made.created
            else f" from your {display_path(made.report)}")
    print(f"wrote {display_path(made.results)} and {display_path(made.pdf or made.report)}{mine}")
    if made.missing_figures:
        print(f"note: {len(made.missing_figures)} figures are not in {display_path(figures_dir)}/ yet "
              f"({', '.join(made.missing_figures)}): `python -m lab4 report` without --draft-only draws them")
    return 0


def run_figures(args: argparse.Namespace, sweep_dir: Path, figures_dir: Path) -> int:
    """The analysis notebook: every figure as PDF + PNG and figures/report.pdf."""
    import papermill as pm

    print(f"report: analysing {display_path(sweep_dir)} into {display_path(figures_dir)}/", flush=True)
    try:
        executed = run_analysis(sweep_dir, figures_dir, progress=not args.quiet)
    except pm.PapermillExecutionError as exc:
        print(f"error: the analysis notebook failed: {exc.ename}: {exc.evalue}\n"
              f"       see {display_path(sweep_dir / 'analysis.ipynb')}", file=sys.stderr)
        return 1
    report = figures_dir / REPORT_FILE
    if not report.is_file():
        print(f"error: {display_path(executed)} ran but wrote no {display_path(report)}", file=sys.stderr)
        return 1
    source, target = README_FIGURE
    if args.readme and (figures_dir / f"{source}.png").is_file():
        shutil.copyfile(figures_dir / f"{source}.png", figures_dir / target)
    names = [n for n in FIGURE_NAMES if (figures_dir / f"{n}.pdf").is_file()]
    print(f"wrote {display_path(report)} and {len(names)} figures as PDF + PNG in {display_path(figures_dir)}/ "
          f"({', '.join(names)}); executed notebook: {display_path(executed)}")
    return 0


# ---------------------------------------------------------------------------------------
# `python -m lab4 table`: the results as markdown, for the README
# ---------------------------------------------------------------------------------------

MARKDOWN_COLUMNS = ("val_psnr_mean", "baseline_psnr_mean", "val_ssim_mean", "baseline_ssim_mean", "best_val_psnr",
                    "test_psnr", "test_baseline_psnr", "test_ssim", "test_baseline_ssim")


def results_markdown(sweep: SweepData) -> str:
    """The results table of a sweep as markdown: every model number as mean ± sd over seeds with
    n, the baseline's beside it, and a line saying what it was measured on and by which command."""
    table = tables.results_table(sweep.finished, sweep.last_validation())
    if table.empty:
        return f"{sweep.root}: no finished run"
    book = ReportBook(sweep)
    headers = ["run", "n"] + [tables.TABLE_COLUMNS[c].replace("\n", " ") for c in MARKDOWN_COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in table.iterrows():
        cells = [book.base_labels.get(row["run"], row["run"]), str(int(row["n"]))]
        for col in MARKDOWN_COLUMNS:
            value, std = row[col], row[f"{col}_std"]
            digits = 3 if "ssim" in col else 2
            cells.append("n/a" if pd.isna(value) else f"{value:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± sample standard deviation over the n seeds of each run (dB for PSNR). "
              + book.val_measure() + " Test: Kaggle's score (data range 255) over the scored frames of the test "
              "sequences. " + book.what_ran()]
    for group, what in (("kl", "KL annealing"), ("tf", "Teacher forcing")):
        compared = book.compare_group(group)
        if compared is not None and len(compared[1]) > 1:
            lines += ["", *group_comparison(book, what, *compared)]
    comparison = book.compare_strategies()
    if comparison is not None:
        lines += ["", "| setting | final val PSNR, mean ± sd (n) | 95 % interval | margin over the reference | "
                      "beats it by more than the seed spread |", "|---|---|---|---|---|"]
        for base, row in comparison.iterrows():
            interval = "n/a" if pd.isna(row["half_width"]) else f"{row['low']:.2f} to {row['high']:.2f}"
            lines.append(f"| {book.base_labels.get(base, base)} | "
                         f"{stats.format_mean_std(row['mean'], row['std'], int(row['n']))} | {interval} | "
                         f"{row['margin']:+.2f} | {'yes' if row['beats_reference'] else 'no'} |")
        lines += ["", book.strategy_verdict()]
    return "\n".join(lines)


def group_comparison(book: ReportBook, what: str, reference: str, table: pd.DataFrame) -> list[str]:
    """An ablation group's settings against its reference (the plan's first in the group), each
    difference with the 95 % t-interval of its setting's mean, as markdown lines."""
    label = book.base_labels.get(reference, reference)
    lines = [f"{what}, against {label}:", "",
             "| setting | final val PSNR, mean ± sd (n) | 95 % interval | difference | larger than the seed spread |",
             "|---|---|---|---|---|"]
    for base, row in table.iterrows():
        if base == reference:
            continue
        interval = "n/a" if pd.isna(row["half_width"]) else f"{row['low']:.2f} to {row['high']:.2f}"
        spread = max(row["std"], table.loc[reference, "std"])
        larger = "n/a" if pd.isna(spread) or row["n"] < 2 else ("yes" if abs(row["margin"]) > spread else "no")
        lines.append(f"| {book.base_labels.get(base, base)} | "
                     f"{stats.format_mean_std(row['mean'], row['std'], int(row['n']))} | {interval} | "
                     f"{row['margin']:+.2f} dB | {larger} |")
    ref = table.loc[reference]
    ref_interval = "" if pd.isna(ref["half_width"]) else f", 95 % interval {ref['low']:.2f} to {ref['high']:.2f}"
    lines += ["", f"The reference, {label}: {stats.format_mean_std(ref['mean'], ref['std'], int(ref['n']))} dB"
                  f"{ref_interval}. The interval is the mean's (Student's t over the seeds); a difference is "
                  "larger than the seed spread when it exceeds the larger of the two standard deviations."]
    return lines


def cmd_table(args: argparse.Namespace) -> int:
    sweep_dir = resolve(args.sweep) if args.sweep else latest_sweep(resolve("runs"))
    print(f"<!-- python -m lab4 table {display_path(sweep_dir)} -->")
    print(results_markdown(load_sweep(sweep_dir)))
    return 0
