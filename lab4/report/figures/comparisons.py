"""Figures that compare: the results table drawn, training strategies over seeds, z-sampling strategies."""

from __future__ import annotations

import textwrap
from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lab4.report.figures.style import BASELINE_LABEL, BASELINE_STYLE, _colors, empty_figure, _label
from lab4.report.stats import summarise
from lab4.report.tables import TABLE_COLUMNS


def _cell_text(row: pd.Series, col: str, wrap: int) -> str:
    import textwrap

    value = row[col]
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "n/a"
        std = row.get(f"{col}_std", np.nan)
        return f"{value:.2f}" if pd.isna(std) else f"{value:.2f}\n± {std:.2f}"
    return textwrap.fill(str(value), wrap) if col == "settings" else str(value)


def fig_table(table: pd.DataFrame, title: str | None = None, note: str | None = None,
              wrap: int = 46) -> Figure:
    """A DataFrame drawn as a table (numbers to 2 decimals; a column with a `<column>_std`
    companion reads "mean ± std"), for the report PDF."""
    import textwrap

    title = title or "Results"
    if table.empty:
        return empty_figure(title, "no results")
    shown = [c for c in table.columns if not (c.endswith("_std") and c[:-4] in table.columns)]
    headers = [TABLE_COLUMNS.get(c, c) for c in shown]
    cells = [[_cell_text(row, col, wrap) for col in shown] for _, row in table.iterrows()]
    line_in = 0.17                                   # inches per line of text in a cell
    row_lines = [max(h.count("\n") + 1 for h in headers)] + [max(c.count("\n") + 1 for c in line) for line in cells]
    row_in = [line_in * n + 0.12 for n in row_lines]
    note_lines = textwrap.wrap(note, 190) if note else []
    title_in, note_in = 0.55, line_in * len(note_lines) + (0.15 if note_lines else 0)
    width_in, height_in = 16.0, title_in + sum(row_in) + note_in + 0.15
    fig = Figure(figsize=(width_in, height_in))
    table_h = sum(row_in) / height_in
    ax = fig.add_axes((0.01, 1 - (title_in + sum(row_in)) / height_in, 0.98, table_h))
    ax.axis("off")
    widths = [0.10 if c == "run" else 0.25 if c == "settings" else 0.05 if c == "seeds" else 0.03 if c == "n"
              else 0.0666 for c in shown]
    widths = [w / sum(widths) for w in widths]
    tab = ax.table(cellText=cells, colLabels=headers, loc="upper center", cellLoc="center", colWidths=widths,
                   bbox=(0, 0, 1, 1))
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    for (r, c), cell in tab.get_celld().items():
        cell.set_height(row_in[r] / sum(row_in))
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8e8f0")
        elif shown[c] == "settings":
            cell.set_text_props(ha="left", multialignment="left")
            cell.PAD = 0.02
    if note_lines:
        fig.text(0.01, 0.1 / height_in, "\n".join(note_lines), fontsize=8, va="bottom")
    fig.suptitle(title, y=1 - 0.1 / height_in, va="top")
    return fig


# ---------------------------------------------------------------------------------------
# 7. Other training strategies (seeds and intervals), and 8. z strategies at generation
# ---------------------------------------------------------------------------------------


def fig_training_strategies(per_seed: pd.DataFrame, reference: str, labels: Mapping[str, str] | None = None,
                            title: str | None = None) -> Figure:
    """Each training strategy's final val PSNR (and SSIM): every seed as a dot, the mean with
    its 95 % t-interval as a bar, the reference setting's interval as a shaded band, and the
    repeat-first-frame baseline. per_seed: one row per run (base, seed, final_val_psnr,
    baseline_psnr, and val_ssim_mean / baseline_ssim_mean when logged)."""
    title = title or "Training strategies: final validation PSNR over seeds"
    if per_seed.empty or "final_val_psnr" not in per_seed or per_seed["final_val_psnr"].isna().all():
        return empty_figure(title, "no finished strategy run with a validation")
    metrics = [("final_val_psnr", "baseline_psnr", "final val PSNR (dB)")]
    if "val_ssim_mean" in per_seed and per_seed["val_ssim_mean"].notna().any():
        metrics.append(("val_ssim_mean", "baseline_ssim_mean", "final val SSIM"))
    order = list(summarise(per_seed, "base", "final_val_psnr").sort_values("mean").index)
    n_text = {name: int((per_seed["base"] == name).sum()) for name in order}
    ticks = [textwrap.fill(f"{_label(n, labels)} (n={n_text[n]})", 48) for n in order]
    # Rows as tall as the longest wrapped label, so that labels of three or four lines do not overlap.
    row_height = max(0.45, 0.17 * max(t.count("\n") + 1 for t in ticks) + 0.08)
    fig = Figure(figsize=(6.5 * len(metrics), row_height * len(order) + 1.8), layout="constrained")
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    for ax, (column, baseline_column, xlabel) in zip(axes, metrics):
        stats = summarise(per_seed, "base", column)
        ypos = {name: i for i, name in enumerate(order)}
        if reference in stats.index and stats.loc[reference, "n"] > 1:
            ref = stats.loc[reference]
            ax.axvspan(ref["low"], ref["high"], color="0.85", zorder=0, label=f"{_label(reference, labels)}: 95% CI")
        for name in order:
            row, y = stats.loc[name], ypos[name]
            seeds = per_seed[per_seed["base"] == name][column]
            ax.plot(seeds, np.full(len(seeds), y), "o", ms=4, color="0.55", alpha=0.8)
            err = None if row["n"] < 2 else [[row["half_width"]], [row["half_width"]]]
            ax.errorbar(row["mean"], y, xerr=err, fmt="D", ms=6, capsize=4,
                        color="C3" if name == reference else "C0")
        shown = list(per_seed[column].dropna())
        if reference in stats.index and stats.loc[reference, "n"] > 1:
            shown += [stats.loc[reference, "low"], stats.loc[reference, "high"]]
        if baseline_column in per_seed and per_seed[baseline_column].notna().any():
            baseline = float(per_seed[baseline_column].mean())
            ax.axvline(baseline, label=BASELINE_LABEL, **BASELINE_STYLE)
            shown.append(baseline)
        # The axis spans the seeds, the reference's band and the baseline: a candidate with two
        # far-apart seeds has a t-interval tens of dB wide, which would squash every other row.
        pad = 0.08 * (max(shown) - min(shown)) or 0.5
        ax.set_xlim(min(shown) - pad, max(shown) + pad)
        ax.set_xlabel(xlabel)
    axes[0].set_yticks(range(len(order)), ticks)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncols=2)
    fig.suptitle(title)
    return fig


def fig_z_strategies(per_frame: pd.DataFrame, title: str | None = None) -> Figure:
    """z strategies of one model: mean PSNR (and SSIM) per strategy beside the baseline's,
    the ORACLE hatched and labelled, and PSNR per frame of each. per_frame: the rows of
    `lab4.report.zsampling.compare_z_strategies` (strategy, sequence, frame, psnr, baseline_psnr,
    ssim, baseline_ssim)."""
    title = title or "z at generation: strategies compared on one model"
    if per_frame.empty:
        return empty_figure(title, "no z-strategy rollout to show")
    from lab4.rollout import ORACLE_Z_MODES

    names = list(dict.fromkeys(per_frame["strategy"]))
    colors = _colors(names)
    metrics = [("psnr", "baseline_psnr", "mean PSNR (dB)")]
    if "ssim" in per_frame:
        metrics.append(("ssim", "baseline_ssim", "mean SSIM"))
    fig = Figure(figsize=(12, 4.4), layout="constrained")
    grid = fig.add_gridspec(1, len(metrics) + 2)
    for i, (column, baseline_column, xlabel) in enumerate(metrics):
        ax = fig.add_subplot(grid[0, i])
        means = per_frame.groupby("strategy", sort=False)[column].mean()
        for y, name in enumerate(names):
            oracle = name in ORACLE_Z_MODES
            ax.barh(y, means[name], color=colors[name], hatch="//" if oracle else None,
                    edgecolor="0.2" if oracle else None, alpha=0.55 if oracle else 0.9)
        ax.axvline(float(per_frame[baseline_column].mean()), label=BASELINE_LABEL, **BASELINE_STYLE)
        low = min(means.min(), per_frame[baseline_column].mean())
        ax.set_xlim(low - 0.1 * abs(low) if column == "psnr" else max(0.0, low - 0.1), None)
        ax.set_yticks(range(len(names)), [f"{n} (ORACLE)" if n in ORACLE_Z_MODES else n for n in names]
                      if i == 0 else [""] * len(names))
        ax.set_xlabel(xlabel)
        if i == 0:
            ax.legend(fontsize=8, loc="lower right")
    ax = fig.add_subplot(grid[0, len(metrics):])
    for name in names:
        curve = per_frame[per_frame["strategy"] == name].groupby("frame")["psnr"].mean()
        ax.plot(curve.index, curve.values, lw=1.0, color=colors[name],
                ls=":" if name in ORACLE_Z_MODES else "-", label=name + (" (ORACLE)" if name in ORACLE_Z_MODES else ""))
    baseline = per_frame.groupby("frame")["baseline_psnr"].mean()
    ax.plot(baseline.index, baseline.values, label=BASELINE_LABEL, **BASELINE_STYLE)
    ax.set_xlabel("frame of the rollout (frame 0 is given)")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return fig
