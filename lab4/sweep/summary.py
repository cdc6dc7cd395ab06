"""A sweep's summary: one row per run (its settings, validation and test numbers, times),
written to runs/<sweep>/summary.csv when the sweep ends, and a finished run's headline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab4.io import atomic_write_text
from lab4.runs import RUN_NOTEBOOK, SUMMARY_FILE
from lab4.runs.results import run_summary
from lab4.sweep.knobs import describe_ablation
from lab4.sweep.plan import Plan, RunSpec
from lab4.workspace import display_path

# Settings always written to summary.csv (plus any other field a plan varies).
SUMMARY_SETTINGS = ["num_epoch", "kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "kl_anneal_step",
                    "tfr", "tfr_sde", "tfr_d_step", "tf_granularity"]


@dataclass
class Outcome:
    run: RunSpec
    status: str             # done, skipped, failed
    seconds: float = 0.0
    error: str = ""
    device: str = ""


def headline(row: dict[str, Any]) -> str:
    def db(key: str) -> str:
        value = row.get(key)
        return "n/a" if value is None else f"{value:.2f} dB"

    text = (f"val PSNR {db('final_val_psnr')} (best {db('best_val_psnr')}; repeat-first-frame baseline "
            f"{db('baseline_psnr')}; mean over {row.get('val_frames', '?')} predicted val frames)")
    if row.get("val_ssim_mean") is not None and row["val_ssim_mean"] == row["val_ssim_mean"]:  # not NaN
        text += f", val SSIM {row['val_ssim_mean']:.3f} (baseline {row.get('baseline_ssim_mean', float('nan')):.3f})"
    if row.get("test_psnr") is not None:
        text += f", test {db('test_psnr')} (baseline {db('test_baseline_psnr')})"
        if row.get("test_ssim") is not None and row["test_ssim"] == row["test_ssim"]:
            text += f", test SSIM {row['test_ssim']:.3f} (baseline {row.get('test_baseline_ssim', float('nan')):.3f})"
    return text


def summary_row(plan: Plan, outcome: Outcome, sweep_dir: Path) -> dict[str, Any]:
    """One run's row of summary.csv: settings, val PSNR (final, best), baseline, test score, times."""
    run = outcome.run
    run_dir = sweep_dir / run.name
    row: dict[str, Any] = {
        "sweep": plan.name, "run": run.name, "base": run.base, "label": run.label, "seed": run.seed,
        "groups": " ".join(run.groups), "status": outcome.status, "profile": plan.profile,
        "data_root": display_path(run.config.data_root),
    }
    settings_cols = SUMMARY_SETTINGS + [k for k in plan.varied if k not in SUMMARY_SETTINGS]
    row.update({k: _cell(getattr(run.config, k)) for k in settings_cols})
    row["settings"] = describe_ablation(run.config)
    if outcome.status in ("done", "skipped"):
        row.update(run_summary(run_dir))
    row["run_seconds"] = round(outcome.seconds, 1)
    row["device"] = outcome.device
    row["notebook"] = display_path(run_dir / RUN_NOTEBOOK)
    row["error"] = outcome.error
    return row


def write_summary(plan: Plan, sweep_dir: Path, outcomes: list[Outcome]) -> Path:
    """runs/<sweep>/summary.csv: one row per run of this invocation (see summary_row), then the rows
    an earlier invocation wrote for runs this one left out (other seeds, say) whose folders are still
    there, so that `--seeds 1,2` after `--seeds 0` keeps seed 0's row; in the plan's order, by seed."""
    import pandas as pd

    rows = [summary_row(plan, outcome, sweep_dir) for outcome in outcomes]
    path = sweep_dir / SUMMARY_FILE
    ran = {row["run"] for row in rows}
    try:
        earlier = pd.read_csv(path).to_dict("records") if path.is_file() else []
    except (ValueError, UnicodeDecodeError):  # a summary.csv that is not a table: rewritten from this run
        earlier = []
    rows += [row for row in earlier if isinstance(row.get("run"), str) and row["run"] not in ran
             and (sweep_dir / row["run"]).is_dir()]
    order = {run.base: i for i, run in enumerate(plan.runs)}
    rows.sort(key=lambda row: (order.get(row.get("base"), len(order)), str(row.get("base")), row.get("seed", 0)))
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def _cell(value: Any) -> Any:
    return " ".join(map(str, value)) if isinstance(value, list) else value
