"""The report's numbers as tables (pandas, no plotting): the results table of a sweep (mean
and sample standard deviation over seeds), time to quality, fractional epochs."""

from __future__ import annotations


import numpy as np
import pandas as pd



def fractional_epoch(iters: pd.DataFrame) -> pd.Series:
    """x position in epochs of each iteration-log row of one run: epoch e covers (e-1, e]."""
    ends = iters.groupby("epoch")["iteration"].max()
    starts = ends.shift(1, fill_value=0)
    start = iters["epoch"].map(starts)
    length = (iters["epoch"].map(ends) - start).clip(lower=1)
    return iters["epoch"] - 1 + (iters["iteration"] - start) / length


def time_to_quality(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each validation of each run against the wall-clock minutes the run had spent by then
    (its epochs' `seconds`, validations included): columns run, minutes, val_psnr, baseline_psnr."""
    if epochs.empty or "seconds" not in epochs or "val_psnr" not in epochs:
        return pd.DataFrame(columns=["run", "minutes", "val_psnr", "baseline_psnr"])
    ordered = epochs.sort_values(["run", "epoch"]).copy()
    ordered["minutes"] = ordered.groupby("run")["seconds"].cumsum() / 60.0
    validated = ordered.dropna(subset=["val_psnr"])
    return validated[["run", "minutes", "val_psnr", "baseline_psnr"]].reset_index(drop=True)


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
