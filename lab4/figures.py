"""The report's figures: functions that take pandas tables (or frame arrays) and return a
matplotlib Figure. Nothing here reads files or touches pyplot's global state: figures are
`matplotlib.figure.Figure` objects, shown inline by Jupyter and saved by `lab4.report`.

Tables are the ones `lab4.results` reads: per-epoch rows (train_log.csv + a `run`
column), per-iteration rows (iter_log.csv + `run`), per-frame validation rows
(val_psnr.csv + `run`, and `base`/`seed` when seeds are repeated).
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from lab4.scrubber import difference_image
from lab4.stats import summarise

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


def _empty(title: str, message: str) -> Figure:
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


def fractional_epoch(iters: pd.DataFrame) -> pd.Series:
    """x position in epochs of each iteration-log row of one run: epoch e covers (e-1, e]."""
    ends = iters.groupby("epoch")["iteration"].max()
    starts = ends.shift(1, fill_value=0)
    start = iters["epoch"].map(starts)
    length = (iters["epoch"].map(ends) - start).clip(lower=1)
    return iters["epoch"] - 1 + (iters["iteration"] - start) / length


# ---------------------------------------------------------------------------------------
# 1. Teacher forcing over epochs, with the loss
# ---------------------------------------------------------------------------------------


def fig_teacher_forcing(epochs: pd.DataFrame, runs: Sequence[str] | None = None,
                        labels: Mapping[str, str] | None = None, title: str | None = None) -> Figure:
    """One panel per run: train loss and MSE per epoch (log scale, left) with the
    teacher-forcing ratio and the share of teacher-forced batches (right)."""
    names = _runs(epochs, runs)
    title = title or "Teacher-forcing ratio and training loss over epochs"
    if not names:
        return _empty(title, "no teacher-forcing runs to show")
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        df = epochs[epochs["run"] == name].sort_values("epoch")
        ax.plot(df["epoch"], df["train_loss"], "-o", ms=3, color="C0", label="train loss (MSE + beta KL)")
        ax.plot(df["epoch"], df["train_mse"], "-s", ms=3, color="C2", label="train MSE")
        val = df.dropna(subset=["val_mse"]) if "val_mse" in df else df.iloc[:0]
        if not val.empty:
            ax.plot(val["epoch"], val["val_mse"], "--^", ms=3, color="C3", label="val MSE (rollout)")
        _scale(ax, df["train_loss"], df["train_mse"], val["val_mse"] if not val.empty else pd.Series([], dtype=float))
        _epoch_axis(ax)
        ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_title(_label(name, labels), fontsize=10)
        tf = ax.twinx()
        tf.grid(False)
        tf.step(df["epoch"], df["tfr"], where="mid", color="C1", lw=2, label="teacher-forcing ratio")
        tf.plot(df["epoch"], df["teacher_forced"], "x", color="C4", ms=6, label="share of batches teacher-forced")
        tf.set_ylim(-0.05, 1.05)
        tf.set_ylabel("teacher forcing", color="C1")
    for ax in axes[len(names):]:
        ax.axis("off")
    handles = axes[0].get_legend_handles_labels()
    tf_handles = [Line2D([], [], color="C1", lw=2), Line2D([], [], color="C4", marker="x", ls="")]
    fig.legend(handles[0] + tf_handles,
               handles[1] + ["teacher-forcing ratio", "share of batches teacher-forced"],
               loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------
# 2. KL annealing: loss curves and the beta schedules
# ---------------------------------------------------------------------------------------


def fig_kl_annealing(epochs: pd.DataFrame, iters: pd.DataFrame, runs: Sequence[str] | None = None,
                     labels: Mapping[str, str] | None = None, title: str | None = None) -> Figure:
    """Train total loss, train MSE, KL (per logged iteration) and val MSE (per validation)
    for each run overlaid; beneath, each run's beta schedule."""
    names = _runs(epochs, runs)
    title = title or "KL annealing: loss curves and beta schedules"
    if not names:
        return _empty(title, "no KL-annealing runs to show")
    colors = _colors(names)
    fig = Figure(figsize=(11, 6.5 + 0.9 * len(names)), layout="constrained")
    grid = fig.add_gridspec(2 + len(names), 2, height_ratios=[3, 3] + [1] * len(names))
    panels = {
        "loss": fig.add_subplot(grid[0, 0]), "mse": fig.add_subplot(grid[0, 1]),
        "kl": fig.add_subplot(grid[1, 0]), "val": fig.add_subplot(grid[1, 1]),
    }
    betas = [fig.add_subplot(grid[2 + i, :]) for i in range(len(names))]
    for name, beta_ax in zip(names, betas):
        color = colors[name]
        it = iters[iters["run"] == name].sort_values("iteration") if not iters.empty else iters
        ep = epochs[epochs["run"] == name].sort_values("epoch")
        if not it.empty:
            x = fractional_epoch(it)
            panels["loss"].plot(x, it["loss"], color=color, lw=1, label=_label(name, labels))
            panels["mse"].plot(x, it["mse"], color=color, lw=1)
            panels["kl"].plot(x, it["kl"], color=color, lw=1)
            beta_ax.plot(x, it["beta"], color=color, lw=1.5)
        else:  # no iteration log: per-epoch means
            x = ep["epoch"]
            panels["loss"].plot(x, ep["train_loss"], "-o", ms=3, color=color, label=_label(name, labels))
            panels["mse"].plot(x, ep["train_mse"], "-o", ms=3, color=color)
            panels["kl"].plot(x, ep["train_kl"], "-o", ms=3, color=color)
            beta_ax.step(x, ep["beta"], where="post", color=color)
        val = ep.dropna(subset=["val_mse"])
        panels["val"].plot(val["epoch"], val["val_mse"], "-o", ms=4, color=color)
        beta_ax.set_ylim(-0.05, max(1.05, float(it["beta"].max() if not it.empty else ep["beta"].max()) * 1.05))
        beta_ax.set_ylabel("beta", fontsize=8)
        beta_ax.set_title(f"beta schedule: {_label(name, labels)}", fontsize=9, loc="left")
        beta_ax.set_xlim(left=0)
    for key, text in (("loss", "train loss = MSE + beta KL"), ("mse", "train MSE (per pixel)"),
                      ("kl", "train KL (summed over latents / batch)"),
                      ("val", "val MSE of the full rollout (z from the prior)")):
        ax = panels[key]
        ax.set_title(text, fontsize=10)
        _scale(ax, *[pd.Series(line.get_ydata()) for line in ax.get_lines()])
        _epoch_axis(ax)
        ax.set_xlim(left=0)
    for ax in betas:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    betas[-1].set_xlabel("epoch")
    fig.legend(loc="outside lower center", fontsize=8, ncol=min(4, len(names)), frameon=False)
    fig.suptitle(title)
    return fig


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


def fig_psnr_per_frame(frames: pd.DataFrame, labels: Mapping[str, str] | None = None,
                       title: str | None = None, group: str = "base") -> Figure:
    """PSNR (and, when logged, SSIM beneath) of every frame of the validation rollout, one
    line per run (the mean across seeds, with its 95 % t-interval as a band where a run has
    several), and the repeat-first-frame baseline on the same frames."""
    title = title or "PSNR per frame of the validation rollout"
    if frames.empty:
        return _empty(title, "no validation rollout to show")
    key = group if group in frames else "run"
    names = list(dict.fromkeys(frames[key]))
    colors = _colors(names)
    fig, axes, metrics = _stacked_metrics(frames, [("psnr", "baseline_psnr", "PSNR (dB)"),
                                                   ("ssim", "baseline_ssim", "SSIM")], 11, 4.6)
    for ax, (column, baseline_column, ylabel) in zip(axes, metrics):
        for name in names:
            stats = summarise(frames[frames[key] == name], "frame", column)
            _mean_band(ax, stats.index, stats, colors[name], _seed_label(name, labels, int(stats["n"].max())))
        baseline = frames.groupby("frame")[baseline_column].mean()
        ax.plot(baseline.index, baseline.values, label=BASELINE_LABEL, **BASELINE_STYLE)
        if baseline.index.max() > 600:
            ax.axvline(600.5, color="0.6", lw=0.8, ls=":")
            ax.text(600.5, ax.get_ylim()[1], " last scored frame (600)", fontsize=8, va="top", color="0.4")
        ax.set_ylabel(ylabel)
    _run_legend(fig, axes[0], len(names))
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("frame of the rollout (frame 0 is given)")
    axes[-1].set_xlim(1, int(frames["frame"].max()))
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------
# 4. Val PSNR per epoch, and PSNR per frame over epochs for one run
# ---------------------------------------------------------------------------------------


def fig_val_psnr_epochs(epochs: pd.DataFrame, labels: Mapping[str, str] | None = None,
                        title: str | None = None, group: str = "base") -> Figure:
    """Mean val PSNR (and SSIM beneath, when logged) at every validation, one line per run:
    the mean across seeds with its 95 % t-interval as a band where a run has several
    (rows carry a `base` column then); the repeat-first-frame baseline beside it."""
    title = title or "Validation PSNR per epoch"
    val = epochs.dropna(subset=["val_psnr"]) if "val_psnr" in epochs else epochs.iloc[:0]
    if val.empty:
        return _empty(title, "no validation has run")
    key = group if group in val else "run"
    names = list(dict.fromkeys(val[key]))
    colors = _colors(names)
    fig, axes, metrics = _stacked_metrics(val, [("val_psnr", "baseline_psnr", "mean PSNR over the rollout (dB)"),
                                                ("val_ssim", "baseline_ssim", "mean SSIM over the rollout")], 9, 4.4)
    for ax, (column, baseline_column, ylabel) in zip(axes, metrics):
        for name in names:
            stats = summarise(val[val[key] == name].sort_values("epoch"), "epoch", column)
            label = _seed_label(name, labels, int(stats["n"].max()))
            _mean_band(ax, stats.index, stats, colors[name], label)
            ax.plot(stats.index, stats["mean"], "o", ms=4, color=colors[name])
        if baseline_column in val:
            ax.axhline(float(val[baseline_column].mean()), label=BASELINE_LABEL, **BASELINE_STYLE)
        ax.set_ylabel(ylabel)
    _epoch_axis(axes[-1])
    _run_legend(fig, axes[0], len(names), ncol=1 if len(names) <= LEGEND_INSIDE_MAX else 2)
    fig.suptitle(title)
    return fig


def time_to_quality(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each validation of each run against the wall-clock minutes the run had spent by then
    (its epochs' `seconds`, validations included): columns run, minutes, val_psnr, baseline_psnr."""
    if epochs.empty or "seconds" not in epochs or "val_psnr" not in epochs:
        return pd.DataFrame(columns=["run", "minutes", "val_psnr", "baseline_psnr"])
    ordered = epochs.sort_values(["run", "epoch"]).copy()
    ordered["minutes"] = ordered.groupby("run")["seconds"].cumsum() / 60.0
    validated = ordered.dropna(subset=["val_psnr"])
    return validated[["run", "minutes", "val_psnr", "baseline_psnr"]].reset_index(drop=True)


def fig_time_to_quality(epochs: pd.DataFrame, labels: Mapping[str, str] | None = None,
                        title: str | None = None) -> Figure:
    """Val PSNR at each validation against the minutes the run had spent by then, one line per
    run (every seed its own line), the repeat-first-frame baseline beside."""
    title = title or "Validation PSNR against training time"
    points = time_to_quality(epochs)
    if points.empty:
        return _empty(title, "no validation has run")
    names = list(dict.fromkeys(points["run"]))
    colors = _colors(names)
    fig = Figure(figsize=(9, 4.4), layout="constrained")
    ax = fig.subplots()
    for name in names:
        run = points[points["run"] == name]
        ax.plot(run["minutes"], run["val_psnr"], "o-", ms=4, color=colors[name], label=_label(name, labels))
    ax.axhline(float(points["baseline_psnr"].mean()), label=BASELINE_LABEL, **BASELINE_STYLE)
    ax.set_xlabel("wall-clock minutes of the run, validations included")
    ax.set_ylabel("mean PSNR over the rollout (dB)")
    ax.set_xlim(left=0)
    _run_legend(fig, ax, len(names), ncol=1 if len(names) <= LEGEND_INSIDE_MAX else 2)
    fig.suptitle(title)
    return fig


def fig_psnr_heatmap(frames: pd.DataFrame, run: str | None = None, title: str | None = None) -> Figure:
    """PSNR of every frame (x) at every validation (y) of one run."""
    df = frames[frames["run"] == run] if run is not None and "run" in frames else frames
    title = title or f"PSNR per frame over epochs{f': {run}' if run else ''}"
    if df.empty:
        return _empty(title, "no validations to show")
    grid = df.pivot_table(index="epoch", columns="frame", values="psnr", aggfunc="mean").sort_index()
    fig = Figure(figsize=(11, 1.6 + 0.32 * len(grid)), layout="constrained")
    ax = fig.add_subplot()
    frames_x = grid.columns.to_numpy()
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest",
                      extent=(frames_x.min() - 0.5, frames_x.max() + 0.5, len(grid) - 0.5, -0.5))
    ax.set_yticks(range(len(grid)))
    ax.set_yticklabels([str(e) for e in grid.index])
    ax.set_ylabel("epoch")
    ax.set_xlabel("frame of the rollout")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="PSNR (dB)")
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------
# 5. A strip of frames
# ---------------------------------------------------------------------------------------


def default_steps(length: int, count: int = 6) -> list[int]:
    """`count` frames spread over 1..length-1 (the predicted ones)."""
    if length < 2:
        return []
    return sorted(set(np.linspace(1, length - 1, min(count, length - 1)).round().astype(int).tolist()))


def fig_frame_strip(labels: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
                    psnr: np.ndarray | None = None, steps: Sequence[int] | None = None,
                    title: str | None = None, gain: float = 4.0) -> Figure:
    """Rows: pose label, ground truth, prediction, |prediction - truth| (x gain); columns:
    the chosen frames. Arrays are uint8 (T, 3, H, W); psnr[t-1] is frame t's PSNR."""
    steps = list(steps) if steps is not None else default_steps(len(truth))
    title = title or "Pose, ground truth, prediction and error at chosen frames"
    if not steps:
        return _empty(title, "the rollout has no predicted frames")
    rows = [("pose label", labels), ("ground truth", truth), ("prediction", prediction)]
    height, width = truth.shape[-2:]
    fig = Figure(figsize=(1.9 * len(steps) + 0.9, 4 * 1.9 * height / width + 1.0), layout="constrained")
    axes = fig.subplots(4, len(steps), squeeze=False)
    for j, t in enumerate(steps):
        for i, (name, array) in enumerate(rows):
            axes[i, j].imshow(array[t].transpose(1, 2, 0), interpolation="nearest")
        axes[3, j].imshow(difference_image(prediction[t], truth[t], gain).transpose(1, 2, 0),
                          interpolation="nearest")
        head = f"frame {t}"
        if psnr is not None and 1 <= t <= len(psnr):
            head += f"\n{psnr[t - 1]:.1f} dB"
        axes[0, j].set_title(head, fontsize=9)
    for i, name in enumerate([r[0] for r in rows] + [f"|error| x{gain:g}"]):
        axes[i, 0].set_ylabel(name, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    # A run's label can be longer than the strip is wide: wrap it rather than cut it off.
    fig.suptitle(textwrap.fill(title, int(9 * (1.9 * len(steps) + 0.9))))
    return fig


# ---------------------------------------------------------------------------------------
# 6. The results table
# ---------------------------------------------------------------------------------------

TABLE_COLUMNS = {
    "run": "run",
    "settings": "settings",
    "seeds": "seeds",
    "n": "n",
    "val_psnr_mean": "val PSNR\nall frames",
    "val_psnr_1_600": "val PSNR\nframes 1-600",
    "val_psnr_last": "val PSNR\nlast frame",
    "baseline_psnr_mean": "baseline\nall frames",
    "baseline_psnr_1_600": "baseline\nframes 1-600",
    "baseline_psnr_last": "baseline\nlast frame",
    "val_ssim_mean": "val SSIM\nall frames",
    "baseline_ssim_mean": "baseline\nSSIM",
    "best_val_psnr": "best epoch\nval PSNR",
    "test_psnr": "test score\n(all seqs)",
    "test_baseline_psnr": "test\nbaseline",
    "test_ssim": "test SSIM\n(all seqs)",
    "test_baseline_ssim": "test\nbaseline SSIM",
}


def results_table(summary: pd.DataFrame, frames: pd.DataFrame) -> pd.DataFrame:
    """One row per plan run: its settings, seeds and n (how many), then, as the mean over
    seeds with the sample standard deviation beside it in `<column>_std` (NaN for one seed):
    PSNR over all predicted frames, frames 1-600 and the last frame of the final validation
    rollout, the repeat-first-frame baseline on the same frames, SSIM and its baseline, the
    best epoch's mean, the test score.

    summary: the sweep's summary.csv rows (run, base, seed, settings, best_val_psnr, test_*).
    frames: per-frame PSNR of each run's last validation (run, base, seed, frame, psnr, baseline_psnr).
    """
    metrics = [c for c in TABLE_COLUMNS if c not in ("run", "settings", "seeds", "n")]
    columns = ["run", "settings", "seeds", "n"] + [x for c in metrics for x in (c, f"{c}_std")]
    if summary.empty:
        return pd.DataFrame(columns=columns)
    per_run = []
    for name, df in frames.groupby("run", sort=False) if not frames.empty else []:
        scored = df[df["frame"] <= 600]
        last = df[df["frame"] == df["frame"].max()]
        per_run.append({"run": name, "val_psnr_mean": df["psnr"].mean(), "val_psnr_1_600": scored["psnr"].mean(),
                        "val_psnr_last": last["psnr"].mean(), "baseline_psnr_mean": df["baseline_psnr"].mean(),
                        "baseline_psnr_1_600": scored["baseline_psnr"].mean(),
                        "baseline_psnr_last": last["baseline_psnr"].mean(),
                        "val_ssim_mean": df["ssim"].mean() if "ssim" in df else np.nan,
                        "baseline_ssim_mean": df["baseline_ssim"].mean() if "baseline_ssim" in df else np.nan})
    measured = pd.DataFrame(per_run)
    if measured.empty:
        merged = summary.copy()
    else:
        keep = [c for c in summary.columns if c == "run" or c not in measured.columns]
        merged = summary[keep].merge(measured, on="run", how="left")
    base_col = "base" if "base" in merged else "run"
    rows = []
    for base, df in merged.groupby(base_col, sort=False):
        row: dict = {"run": base, "settings": df["settings"].iloc[0] if "settings" in df else "",
                     "seeds": ", ".join(str(int(s)) for s in df["seed"]) if "seed" in df else "", "n": len(df)}
        for col in metrics:
            values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series([np.nan])
            row[col] = values.mean()
            row[f"{col}_std"] = values.std() if values.count() > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


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
        return _empty(title, "no results")
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
# One run (the training notebook)
# ---------------------------------------------------------------------------------------


def fig_run_curves(epochs: pd.DataFrame, iters: pd.DataFrame, title: str | None = None) -> Figure:
    """One run: loss, MSE and KL; beta and teacher forcing; val PSNR with the baseline."""
    title = title or "Training curves"
    if epochs.empty:
        return _empty(title, "no epochs logged yet")
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    loss, sched, psnr = fig.subplots(1, 3)
    if not iters.empty:
        x = fractional_epoch(iters)
        loss.plot(x, iters["loss"], lw=1, label="loss (MSE + beta KL)")
        loss.plot(x, iters["mse"], lw=1, label="MSE")
        loss.plot(x, iters["kl"], lw=1, alpha=0.6, label="KL")
        sched.plot(x, iters["beta"], lw=1.5, color="C3", label="beta (KL weight)")
    else:
        loss.plot(epochs["epoch"], epochs["train_loss"], "-o", label="loss (MSE + beta KL)")
        loss.plot(epochs["epoch"], epochs["train_mse"], "-o", label="MSE")
        loss.plot(epochs["epoch"], epochs["train_kl"], "-o", label="KL")
        sched.step(epochs["epoch"], epochs["beta"], where="post", color="C3", label="beta (KL weight)")
    _scale(loss, *[pd.Series(line.get_ydata()) for line in loss.get_lines()])
    _epoch_axis(loss)
    loss.set_title("training loss" + (" (log scale)" if loss.get_yscale() == "log" else ""), fontsize=10)
    loss.legend(fontsize=8)
    sched.step(epochs["epoch"], epochs["tfr"], where="mid", color="C1", lw=2, label="teacher-forcing ratio")
    sched.plot(epochs["epoch"], epochs["teacher_forced"], "x", color="C4", label="share teacher-forced")
    sched.set_ylim(-0.05, 1.05 * max(1.0, float(epochs["beta"].max())))
    _epoch_axis(sched)
    sched.set_title("schedules", fontsize=10)
    sched.legend(fontsize=8)
    val = epochs.dropna(subset=["val_psnr"])
    psnr.plot(val["epoch"], val["val_psnr"], "-o", label="model")
    psnr.plot(val["epoch"], val["baseline_psnr"], label=BASELINE_LABEL, **BASELINE_STYLE)
    _epoch_axis(psnr)
    psnr.set_ylabel("dB")
    psnr.set_title("mean PSNR of the val rollout", fontsize=10)
    psnr.legend(fontsize=8)
    fig.suptitle(title)
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
        return _empty(title, "no finished strategy run with a validation")
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
    `lab4.zsampling.compare_z_strategies` (strategy, sequence, frame, psnr, baseline_psnr,
    ssim, baseline_ssim)."""
    title = title or "z at generation: strategies compared on one model"
    if per_frame.empty:
        return _empty(title, "no z-strategy rollout to show")
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
