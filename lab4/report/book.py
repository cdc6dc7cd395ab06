"""The report's figures of a sweep with their captions (ReportBook, what the analysis notebook
calls, one figure per cell), saved as PDF + PNG under stable names, and figures/report.pdf
(lab4.report.pdf)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from lab4.io import atomic_write_text
from lab4.report import figures, stats, tables
from lab4.report.pdf import write_pdf
from lab4.runs.results import SweepData
from lab4.workspace import resolve

# Stable file names (figures/<name>.pdf and .png), in report order.
FIGURE_NAMES = (
    "fig1_teacher_forcing",
    "fig2_kl_annealing",
    "fig3_psnr_per_frame",
    "fig4a_val_psnr_per_epoch",
    "fig4b_psnr_heatmap",
    "fig4c_time_to_quality",
    "fig5_frame_strip",
    "fig6_results_table",
    "fig7_training_strategies",
    "fig8_z_strategies",
)
REPORT_FILE = "report.pdf"
TABLE_FILE = "results_table.csv"
# Every saved figure's caption by name, for the Typst draft (lab4.report.draft), which draws no figure itself.
CAPTIONS_FILE = "captions.json"
README_FIGURE = ("fig3_psnr_per_frame", "readme_psnr_per_frame.png")


def _listing(values: Sequence) -> str:
    uniq = sorted({str(v) for v in values})
    return ", ".join(uniq)


class ReportBook:
    """Makes the report's figures from one sweep and keeps each with its caption."""

    def __init__(self, sweep: SweepData):
        self.sweep = sweep
        self.items: dict[str, tuple[Figure, str]] = {}
        df = sweep.finished
        if df.empty:
            raise ValueError(f"{sweep.root}: no finished run to report on; see {sweep.root / 'summary.csv'} "
                             "for what failed")
        self.runs = list(df["run"]) if not df.empty else []
        self.meta = df.set_index("run") if not df.empty else pd.DataFrame()
        many_seeds = not df.empty and "seed" in df and df.groupby("base")["seed"].nunique().max() > 1
        self.labels = {}
        self.base_labels = {}
        for _, row in df.iterrows():
            label = str(row.get("label", row["base"]))
            self.base_labels[row["base"]] = label
            self.labels[row["run"]] = f"{label} (seed {int(row['seed'])})" if many_seeds else label

    # --- what each number was measured on ------------------------------------------------

    def what_ran(self, runs: Sequence[str] | None = None) -> str:
        df = self.meta.loc[list(runs)] if runs else self.meta
        if df.empty:
            return "no runs"
        parts = [f"sweep '{self.sweep.name}'"]
        for col, text in (("profile", "profile {}"), ("data_root", "data {}"), ("num_epoch", "{} epochs")):
            if col in df:
                parts.append(text.format(_listing(df[col])))
            if col == "data_root":
                parts.append(self.data_styles(df.index))
            if col == "num_epoch":
                updates = {int(self.sweep.run(str(name)).config.get("max_iters") or 0) for name in df.index}
                if updates != {0}:
                    parts.append(f"a budget of {_listing(pd.Series(sorted(updates)))} updates")
        if "seed" in df:
            seeds = _listing(df["seed"].astype(int))
            parts.append(f"seed{'s' if ',' in seeds else ''} {seeds}")
        # When these runs finished (their markers); a sweep re-run over days has one start but many.
        markers = [self.sweep.run(str(name)).marker or {} for name in df.index]
        days = sorted({str(m["finished"])[:10] for m in markers if m.get("finished")})
        started = self.sweep.info.get("started")
        if days:
            parts.append(f"finished {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else ""))
        elif started:
            parts.append(f"sweep started {started[:10]}")
        return "What ran: " + ", ".join(parts) + "."

    def data_styles(self, runs: Sequence[str]) -> str:
        """The style of the data the runs trained on, as each run recorded it (done.json)."""
        styles = sorted({str((self.sweep.run(str(name)).done or {}).get("data_style", "not recorded"))
                         for name in runs})
        return "data style " + " / ".join(styles)

    def seeds_text(self) -> str:
        """How many seeds stand behind each line, and what the band is."""
        if self.meta.empty or "base" not in self.meta:
            return "One seed per run."
        counts = self.meta.groupby("base").size()
        if counts.max() < 2:
            return "One seed per run (no interval: the spread over seeds was not measured)."
        per = ", ".join(f"{self.base_labels.get(b, b)}: {n}" for b, n in counts.items())
        return ("Lines are means over seeds; the bands are 95 % Student-t intervals of that mean "
                f"(mean ± t(0.975, n-1) sd/sqrt(n)); seeds per run: {per}.")

    def with_base(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of runs, with the plan run (`base`) and `seed` each belongs to."""
        if df.empty or self.meta.empty or "base" not in self.meta:
            return df
        return df.assign(base=df["run"].map(self.meta["base"]).fillna(df["run"]),
                         seed=df["run"].map(self.meta["seed"]) if "seed" in self.meta else 0)

    def val_measure(self, z: str | None = None) -> str:
        """What every validation PSNR of the sweep was measured on (z: how z was chosen, default the runs' val_z)."""
        frames = self.sweep.last_validation(self.runs[:1])
        data = self.meta["data_root"].iloc[0] if "data_root" in self.meta else "the data"
        z = z or "z=" + str(self.sweep.run(self.runs[0]).config.get("val_z", "prior"))
        if frames.empty:
            video = f"the validation video of {data}"
        else:
            last = int(frames["frame"].max())
            video = f"the validation video of {data} ({last + 1} frames: frame 0 given, frames 1-{last} predicted)"
        return (f"Measured on {video}, autoregressively from the pose labels with {z}; PSNR per frame "
                "(frames in [0, 1], data range 1), after the run's last epoch.")

    def summary_note(self) -> str:
        """What the columns of summary.csv measure (markdown)."""
        return ("**final_val_psnr**: mean PSNR (dB) over the predicted frames of the last validation rollout; "
                "**best_val_psnr**: the best such mean over the run's validations; **baseline_psnr**: the "
                "repeat-first-frame baseline on the same frames; **val_frames**: how many frames were predicted; "
                "**test_psnr** / **test_baseline_psnr**: mean per-frame PSNR (data range 255) over the scored frames "
                "of the test sequences, as Kaggle scores, when the data has test ground truth; **test_ssim** / "
                "**test_baseline_ssim**: mean SSIM over the same frames; **val_ssim_mean** / **baseline_ssim_mean**: "
                "mean SSIM over the last validation rollout; **train_seconds**: "
                "the epochs' time; **run_seconds**: the whole notebook's. " + self.val_measure() + " "
                + self.what_ran())

    # --- the figures -------------------------------------------------------------------

    def _first_seed(self, runs: Sequence[str]) -> list[str]:
        if self.meta.empty or "seed" not in self.meta:
            return list(runs)
        seen, kept = set(), []
        for run in runs:
            base = self.meta.loc[run, "base"]
            if base not in seen:
                seen.add(base)
                kept.append(run)
        return kept

    def group(self, name: str) -> list[str]:
        """The runs of a plan group ('kl', 'tf'), first seed of each; all runs when none is tagged."""
        runs = self.sweep.runs_in_group(name) or self.runs
        return self._first_seed(runs)

    def add(self, name: str, fig: Figure, caption: str) -> Figure:
        self.items[name] = (fig, caption)
        return fig

    def caption(self, name: str) -> str:
        return self.items[name][1]

    def teacher_forcing(self) -> Figure:
        runs = self.group("tf")
        fig = figures.fig_teacher_forcing(self.sweep.epochs(runs), runs, self.labels,
                                          title="1. Teacher-forcing ratio over epochs, with the training loss")
        caption = ("Teacher-forcing ratio per epoch (orange; the share of batches that were actually "
                   "teacher-forced, crosses) against the training loss (MSE + beta KL, blue), training MSE "
                   "(green) and the validation rollout's MSE (red), for each teacher-forcing setting. "
                   "Training losses are means over the epoch's batches of "
                   f"{self._clip_text()}. " + self.what_ran(runs))
        return self.add("fig1_teacher_forcing", fig, caption)

    def kl_annealing(self) -> Figure:
        runs = self.group("kl")
        fig = figures.fig_kl_annealing(self.sweep.epochs(runs), self.sweep.iters(runs), runs, self.labels,
                                       title="2. KL annealing: loss curves and the beta schedule of each")
        caption = ("Training loss, MSE and KL per logged iteration (means over the iterations since the previous "
                   f"log row, on training clips of {self._clip_text()}) and the validation rollout's MSE at each "
                   "validation, for each KL-annealing schedule at the same teacher-forcing setting; beneath, "
                   "the KL weight beta each run used. " + self.what_ran(runs))
        return self.add("fig2_kl_annealing", fig, caption)

    def psnr_per_frame(self) -> Figure:
        frames = self.sweep.last_validation()
        fig = figures.fig_psnr_per_frame(frames, self.base_labels,
                                         title="3. PSNR per frame of the validation rollout")
        caption = ("PSNR (top) and SSIM (beneath, 11x11 Gaussian window, sigma 1.5, data range 1) of every predicted "
                   "frame for every run, with the repeat-first-frame baseline (the given first frame copied to every "
                   "step) on the same frames. " + self.seeds_text() + " " + self.val_measure() + " " + self.what_ran())
        return self.add("fig3_psnr_per_frame", fig, caption)

    def val_psnr_epochs(self) -> Figure:
        fig = figures.fig_val_psnr_epochs(self.with_base(self.sweep.epochs()), self.base_labels,
                                          title="4a. Validation PSNR per epoch")
        caption = ("Mean PSNR (and SSIM) over the predicted frames of the validation rollout at each validation, per "
                   "run, with the repeat-first-frame baseline. " + self.seeds_text() + " "
                   + self.val_measure().replace(", after the run's last epoch", "") + " " + self.what_ran())
        return self.add("fig4a_val_psnr_per_epoch", fig, caption)

    def time_to_quality(self) -> Figure:
        fig = figures.fig_time_to_quality(self.sweep.epochs(), self.labels,
                                          title="4c. Validation PSNR against training time")
        caption = ("Mean PSNR over the predicted frames of the validation rollout at each validation, against the "
                   "wall-clock minutes the run had spent by then (its training and validations; runs that shared "
                   "the machine with others ran slower), every seed its own line, with the repeat-first-frame "
                   "baseline. " + self.val_measure().replace(", after the run's last epoch", "") + " "
                   + self.what_ran())
        return self.add("fig4c_time_to_quality", fig, caption)

    def best_run(self) -> str:
        df = self.sweep.finished
        if "final_val_psnr" in df and df["final_val_psnr"].notna().any():
            return str(df.loc[df["final_val_psnr"].idxmax(), "run"])
        return self.runs[0]

    def psnr_heatmap(self, run: str | None = None) -> Figure:
        run = run or self.best_run()
        fig = figures.fig_psnr_heatmap(self.sweep.val_frames([run]), run,
                                       title=f"4b. PSNR per frame over epochs: {self.labels.get(run, run)}")
        caption = (f"PSNR of every frame of the validation rollout (columns) at every validation (rows) of run "
                   f"{run} (the best final validation PSNR of the sweep unless chosen). "
                   + self.val_measure().replace(", after the run's last epoch", "") + " " + self.what_ran([run]))
        return self.add("fig4b_psnr_heatmap", fig, caption)

    def frame_strip(self, run: str | None = None, steps: Sequence[int] | None = None, gain: float = 4.0) -> Figure:
        run = run or self.best_run()
        rollout = self.sweep.run(run).rollout
        if rollout is None:
            fig = figures.empty_figure("5. Frames", f"{run}: no validation rollout saved")
        else:
            fig = figures.fig_frame_strip(rollout.labels, rollout.truth, rollout.prediction, rollout.psnr,
                                          steps=steps or None, gain=gain,
                                          title=f"5. Pose, ground truth, prediction and error: {self.labels.get(run, run)}")
        caption = (f"Frames of run {run}'s validation rollout at the chosen steps: the pose label given to the "
                   f"model, the ground truth, the prediction and |prediction - truth| averaged over RGB, times "
                   f"{gain:g} (black: exact); above each column, that frame's PSNR. " + self.val_measure() + " "
                   + self.what_ran([run]))
        return self.add("fig5_frame_strip", fig, caption)

    def results(self) -> pd.DataFrame:
        table = tables.results_table(self.sweep.finished, self.sweep.last_validation())
        test_frames = ""
        if "test_frames" in self.sweep.finished and self.sweep.finished["test_frames"].notna().any():
            test_frames = str(self.sweep.finished["test_frames"].dropna().iloc[0])
        note = ("val: PSNR (dB) of the last validation rollout, mean over all predicted frames, over frames 1-600 "
                "(Kaggle's window; all frames when the video is shorter) and the last frame; baseline: the "
                "repeat-first-frame baseline on the same frames; best epoch: the best mean over the validations; "
                f"test: mean per-frame PSNR (data range 255) over frames {test_frames or '1-600'} of every test "
                "sequence, as Kaggle scores (n/a when the data has no test ground truth). Each cell is the mean over "
                "the run's seeds ± their sample standard deviation (n: how many seeds; no ± for one seed). "
                + self.val_measure() + " " + self.what_ran())
        fig = figures.fig_table(table, title="6. Results", note=None)
        self.add("fig6_results_table", fig, note)
        self.table = table
        return table

    def compare_strategies(self, reference: str | None = None) -> pd.DataFrame | None:
        """The plan's "strategies" group, one row per candidate over its seeds, against the reference
        setting (the plan's first candidate in the group unless named); None without such a group.
        Sets strategy_runs, strategy_reference and strategy_table."""
        compared = self.compare_group("strategies", reference)
        if compared is None:
            return None
        self.strategy_reference, self.strategy_table = compared
        self.strategy_runs = self.sweep.runs_in_group("strategies")
        return self.strategy_table

    def compare_group(self, group: str, reference: str | None = None) -> tuple[str, pd.DataFrame] | None:
        """(reference, stats.compare_to_reference's table) of a group of the plan (kl, tf, strategies):
        each setting over its seeds against the reference, the group's first in the plan unless
        named; None when the sweep has no run in the group."""
        runs = self.sweep.runs_in_group(group)
        if not runs:
            return None
        # The plan's order (sweep.json), not the order runs finished in: its first setting is the reference.
        planned = [run for run in self.sweep.info.get("runs", []) if run in set(runs)] or runs
        reference = reference or str(self.meta.loc[planned[0], "base"])
        seeds = self.sweep.finished[self.sweep.finished["run"].isin(runs)]
        return reference, stats.compare_to_reference(seeds, reference)

    def strategy_seeds(self) -> pd.DataFrame:
        return self.sweep.finished[self.sweep.finished["run"].isin(self.strategy_runs)]

    def training_strategies(self, reference: str | None = None) -> Figure | None:
        """Figure 7: each candidate's final val PSNR/SSIM over its seeds against the reference."""
        if self.compare_strategies(reference) is None:
            return None
        reference, runs = self.strategy_reference, self.strategy_runs
        fig = figures.fig_training_strategies(self.strategy_seeds(), reference, self.base_labels,
                                              title="7. Other training strategies: final validation PSNR over seeds")
        caption = ("Each training strategy, changed from the reference setting (alone, or combined as the plan "
                   f"says; {self.base_labels.get(reference, reference)}, red), at the same budget: every seed's final "
                   "validation PSNR (grey dots), their mean with its 95 % Student-t interval (bar), the reference's "
                   "interval (grey band), the repeat-first-frame baseline (dashed). " + self.strategy_verdict() + " "
                   + self.seeds_text() + " " + self.val_measure() + " " + self.what_ran(runs))
        return self.add("fig7_training_strategies", fig, caption)

    def strategy_verdict(self) -> str:
        """Which candidates beat the reference by more than the seed spread, in words."""
        table = self.strategy_table
        winners = table[table["beats_reference"]]
        if winners.empty:
            return ("No candidate beats the reference by more than the seed spread (margin over the reference's "
                    "mean larger than the larger of the two standard deviations).")
        parts = [f"{self.base_labels.get(b, b)} {r['mean']:.2f} ± {r['std']:.2f} dB (+{r['margin']:.2f})"
                 for b, r in winners.iterrows()]
        ref = table.loc[self.strategy_reference]
        return ("Beating the reference by more than the seed spread (margin larger than the larger standard "
                f"deviation): {'; '.join(parts)} against {ref['mean']:.2f} ± {ref['std']:.2f} dB.")

    def z_strategies(self, run: str | None = None, samples: int = 8) -> Figure:
        """The z strategies of one run (the best unless named) on the val video: read from
        RUN/strategies/z_strategies.csv (`lab4 strategies RUN`), computed and written there when missing."""
        from lab4.report import zsampling

        run = run or self.best_run()
        title = f"8. z at generation: {self.labels.get(run, run)}"
        try:
            per_frame = zsampling.val_strategies(self.sweep.root / run, samples=samples)
        except FileNotFoundError as missing:  # records kept without weights (a fresh clone's committed runs)
            fig = figures.empty_figure(title, f"{run}: no saved table and no checkpoint to compute it ({missing})")
            return self.add("fig8_z_strategies", fig, f"Run {run} has neither RUN/strategies/ tables nor a "
                            "checkpoint here: train it (or run `python -m lab4 strategies RUN`) for this figure. "
                            + self.what_ran([run]))
        fig = figures.fig_z_strategies(per_frame, title=title)
        caption = (f"Run {run}'s best checkpoint (by val PSNR) rolled out with each way of choosing z: one prior "
                   "sample per step (prior), the prior mean (zero), the average of "
                   f"{samples} decoded samples (mean), and best-of-{samples} against the ground truth (ORACLE: it picks each "
                   "frame with the true frame, an upper bound on what the samples contain, as SVG and SAVP report it; "
                   "not a prediction score). Left: mean PSNR and SSIM over the predicted frames; right: PSNR per "
                   "frame; dashed: the repeat-first-frame baseline. " + self.val_measure(z="each strategy") + " "
                   + self.what_ran([run]))
        return self.add("fig8_z_strategies", fig, caption)

    def _clip_text(self) -> str:
        run = self.sweep.run(self.runs[0]) if self.runs else None
        cfg = run.config if run else {}
        return f"{cfg.get('batch_size', '?')} clips x {cfg.get('train_vi_len', '?')} frames"

    # --- writing -----------------------------------------------------------------------

    def save(self, out_dir: str | Path, dpi: int = 150) -> list[Path]:
        """Every figure as <out_dir>/<name>.pdf (vector) and .png; the table as CSV; the captions as JSON."""
        out = resolve(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, (fig, _caption) in self.items.items():
            for ext in ("pdf", "png"):
                path = out / f"{name}.{ext}"
                fig.savefig(path, dpi=dpi)
                written.append(path)
        if hasattr(self, "table"):
            path = out / TABLE_FILE
            self.table.to_csv(path, index=False)
            written.append(path)
        path = out / CAPTIONS_FILE
        atomic_write_text(path, json.dumps({name: caption for name, (_fig, caption) in self.items.items()},
                                           indent=2) + "\n")
        written.append(path)
        return written

    def build_pdf(self, path: str | Path) -> Path:
        """figures/report.pdf: the title page, then every figure with its caption."""
        return write_pdf(resolve(path), self.sweep, self.items, FIGURE_NAMES)
