"""Figures of validation rollouts: PSNR per frame and per epoch, the heatmap, the frame strip."""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lab4.report.figures.style import (BASELINE_LABEL, BASELINE_STYLE, LEGEND_INSIDE_MAX, _colors, _epoch_axis,
                                       _mean_band, _run_legend, _seed_label, _stacked_metrics, empty_figure)
from lab4.report.scrubber import difference_image
from lab4.report.stats import summarise


def fig_psnr_per_frame(frames: pd.DataFrame, labels: Mapping[str, str] | None = None,
                       title: str | None = None, group: str = "base") -> Figure:
    """PSNR (and, when logged, SSIM beneath) of every frame of the validation rollout, one
    line per run (the mean across seeds, with its 95 % t-interval as a band where a run has
    several), and the repeat-first-frame baseline on the same frames."""
    title = title or "PSNR per frame of the validation rollout"
    if frames.empty:
        return empty_figure(title, "no validation rollout to show")
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
        return empty_figure(title, "no validation has run")
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


def fig_psnr_heatmap(frames: pd.DataFrame, run: str | None = None, title: str | None = None) -> Figure:
    """PSNR of every frame (x) at every validation (y) of one run."""
    df = frames[frames["run"] == run] if run is not None and "run" in frames else frames
    title = title or f"PSNR per frame over epochs{f': {run}' if run else ''}"
    if df.empty:
        return empty_figure(title, "no validations to show")
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
        return empty_figure(title, "the rollout has no predicted frames")
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
