"""What the report's figures share: colours, labels, the baseline's line, legends, empty figures."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter


BASELINE_STYLE = {"color": "0.25", "linestyle": "--", "linewidth": 1.2}


BASELINE_LABEL = "repeat-first-frame baseline"


sns.set_theme(style="whitegrid", context="notebook")


def _colors(names: Sequence[str]) -> dict[str, tuple]:
    palette = sns.color_palette("tab10", max(10, len(names)))
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def _label(name: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(name, name)


def _runs(df: pd.DataFrame, runs: Sequence[str] | None) -> list[str]:
    if runs is not None:
        return [r for r in runs if not df.empty and r in set(df["run"])]
    return list(dict.fromkeys(df["run"])) if not df.empty and "run" in df else []


def empty_figure(title: str, message: str) -> Figure:
    fig = Figure(figsize=(6, 2.5), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    fig.suptitle(title)
    return fig


def _scale(ax, *series: pd.Series) -> None:
    """Log y when the values are positive and span more than a decade, else linear."""
    values = pd.concat([pd.to_numeric(v, errors="coerce") for v in series]).dropna() if series else pd.Series([])
    if not values.empty and values.min() > 0 and values.max() / values.min() > 10:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())


def _epoch_axis(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


# ---------------------------------------------------------------------------------------
# 3. PSNR per frame of the validation rollout
# ---------------------------------------------------------------------------------------


def _mean_band(ax, x: pd.Index, stats: pd.DataFrame, color, label: str) -> None:
    """A mean line, and its 95 % t-interval over seeds as a band where there are several."""
    ax.plot(x, stats["mean"], color=color, lw=1.2, label=label)
    if stats["n"].max() > 1:
        ax.fill_between(x, stats["low"], stats["high"], color=color, alpha=0.2, lw=0)


def _stacked_metrics(df: pd.DataFrame, metrics: list[tuple[str, str, str]], width: float, height: float
                     ) -> tuple[Figure, list, list[tuple[str, str, str]]]:
    """One axis per metric, stacked: the first (PSNR) always, the others (SSIM) where the table
    logged them (runs made before SSIM have no such column)."""
    present = metrics[:1] + [m for m in metrics[1:] if m[0] in df and df[m[0]].notna().any()]
    fig = Figure(figsize=(width, height * (1 + 0.6 * (len(present) - 1))), layout="constrained")
    return fig, list(fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]), present


# More lines than this and the legend goes below the plot: over it, it would hide the curves.
LEGEND_INSIDE_MAX = 6


def _run_legend(fig: Figure, ax: Any, lines: int, ncol: int = 2) -> None:
    """The runs' legend: inside the top axes for a few lines, below the figure for many (the
    figure grows by the legend's rows, so the axes keep their size)."""
    if lines <= LEGEND_INSIDE_MAX:
        ax.legend(fontsize=8, ncol=ncol, loc="best")
        return
    rows = -(-(lines + 1) // ncol)
    fig.set_figheight(fig.get_figheight() + 0.19 * rows + 0.2)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, ncols=ncol, loc="outside lower center", frameon=False)


def _seed_label(name: str, labels: Mapping[str, str] | None, seeds: int) -> str:
    return _label(name, labels) + (f" (mean of {seeds} seeds, 95% CI)" if seeds > 1 else " (1 seed)")
