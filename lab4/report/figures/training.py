"""Figures of training: teacher forcing and KL annealing over epochs, one run's curves, time to quality."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lab4.report.figures.style import (BASELINE_LABEL, BASELINE_STYLE, LEGEND_INSIDE_MAX, _colors, _epoch_axis, _label,
                                       _run_legend, _runs, _scale, empty_figure)
from lab4.report.tables import fractional_epoch, time_to_quality


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
        return empty_figure(title, "no teacher-forcing runs to show")
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
        return empty_figure(title, "no KL-annealing runs to show")
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


def fig_time_to_quality(epochs: pd.DataFrame, labels: Mapping[str, str] | None = None,
                        title: str | None = None) -> Figure:
    """Val PSNR at each validation against the minutes the run had spent by then, one line per
    run (every seed its own line), the repeat-first-frame baseline beside."""
    title = title or "Validation PSNR against training time"
    points = time_to_quality(epochs)
    if points.empty:
        return empty_figure(title, "no validation has run")
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


# ---------------------------------------------------------------------------------------
# One run (the training notebook)
# ---------------------------------------------------------------------------------------


def fig_run_curves(epochs: pd.DataFrame, iters: pd.DataFrame, title: str | None = None) -> Figure:
    """One run: loss, MSE and KL; beta and teacher forcing; val PSNR with the baseline."""
    title = title or "Training curves"
    if epochs.empty:
        return empty_figure(title, "no epochs logged yet")
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
