"""The report's figures: functions that take pandas tables (or frame arrays) and return a
matplotlib Figure. Nothing here reads files or touches pyplot's global state: figures are
`matplotlib.figure.Figure` objects, shown inline by Jupyter and saved by `lab4.report`.

Tables are the ones `lab4.runs.results` reads: per-epoch rows (train_log.csv + a `run`
column), per-iteration rows (iter_log.csv + `run`), per-frame validation rows
(val_psnr.csv + `run`, and `base`/`seed` when seeds are repeated).

Parts: training (teacher forcing, KL annealing, a run's curves, time to quality), rollouts (PSNR per
frame and epoch, heatmap, frame strip), comparisons (the results table, training and z-sampling
strategies), style (what they share). The tables they draw are computed in lab4.report.tables.
"""

from lab4.report.figures.comparisons import fig_table, fig_training_strategies, fig_z_strategies
from lab4.report.figures.rollouts import (default_steps, fig_frame_strip, fig_psnr_heatmap, fig_psnr_per_frame,
                                          fig_val_psnr_epochs)
from lab4.report.figures.style import BASELINE_LABEL, BASELINE_STYLE, LEGEND_INSIDE_MAX, empty_figure
from lab4.report.figures.training import fig_kl_annealing, fig_run_curves, fig_teacher_forcing, fig_time_to_quality
from lab4.report.tables import TABLE_COLUMNS, fractional_epoch, results_table, time_to_quality

__all__ = ["BASELINE_LABEL", "BASELINE_STYLE", "LEGEND_INSIDE_MAX", "TABLE_COLUMNS", "default_steps", "empty_figure",
           "fig_frame_strip", "fig_kl_annealing", "fig_psnr_heatmap", "fig_psnr_per_frame", "fig_run_curves",
           "fig_table", "fig_teacher_forcing", "fig_time_to_quality", "fig_training_strategies",
           "fig_val_psnr_epochs", "fig_z_strategies", "fractional_epoch", "results_table", "time_to_quality"]
