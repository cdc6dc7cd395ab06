"""Reading run folders and sweep folders back as pandas tables, for the sweep summary,
the analysis notebook, the figures and the report.

Everything here only reads files that `lab4.train`, `lab4.predict` and `lab4.sweep`
write (see `lab4.runs` for a run folder's layout); nothing is recomputed from a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab4.runs import RUN_MARKER, RUN_NOTEBOOK, SUMMARY_FILE, SWEEP_FILE, RunPaths

# Frames 1..600 are the ones Kaggle scores; the validation tables report the same window.
SCORED_LAST_FRAME = 600


@dataclass
class Rollout:
    """The latest validation rollout of a run (uint8 frames; frame 0 is the given frame)."""

    prediction: np.ndarray      # (T, 3, H, W)
    truth: np.ndarray           # (T, 3, H, W)
    labels: np.ndarray          # (T, 3, H, W)
    psnr: np.ndarray            # (T-1,) PSNR of frames 1..T-1
    baseline_psnr: np.ndarray   # (T-1,) the repeat-first-frame baseline on the same frames

    @property
    def length(self) -> int:
        return int(self.truth.shape[0])


def load_rollout(path: Path) -> Rollout:
    with np.load(path) as npz:
        return Rollout(prediction=npz["prediction"], truth=npz["truth"], labels=npz["labels"],
                       psnr=np.asarray(npz["psnr"], dtype=float), baseline_psnr=np.asarray(npz["baseline_psnr"], dtype=float))


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass
class RunData:
    """One run folder, read lazily."""

    root: Path
    name: str = ""

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.name = self.name or self.root.name
        self.paths = RunPaths(self.root)

    @cached_property
    def config(self) -> dict[str, Any]:
        return _read_json(self.paths.config) or {}

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """train_log.csv: one row per epoch (val columns empty where no validation ran)."""
        df = _read_csv(self.paths.epoch_log)
        for col in ("val_mse", "val_psnr", "baseline_psnr", "val_ssim", "baseline_ssim"):
            if col in df:
                df[col] = pd.to_numeric(df[col], errors="coerce")
        return df

    @cached_property
    def iters(self) -> pd.DataFrame:
        return _read_csv(self.paths.iter_log)

    @cached_property
    def val_frames(self) -> pd.DataFrame:
        """val_psnr.csv: PSNR of every rollout frame at every validation."""
        return _read_csv(self.paths.val_log)

    @cached_property
    def rollout(self) -> Rollout | None:
        return load_rollout(self.paths.val_rollout) if self.paths.val_rollout.is_file() else None

    @cached_property
    def test_score(self) -> dict[str, Any] | None:
        return _read_json(self.paths.test / "score.json")

    @cached_property
    def done(self) -> dict[str, Any] | None:
        return _read_json(self.paths.done)

    @cached_property
    def marker(self) -> dict[str, Any] | None:
        """The sweep's completion marker, when this run was made by a sweep and finished."""
        return _read_json(self.root / RUN_MARKER)

    @property
    def gifs(self) -> list[Path]:
        return sorted(self.paths.test.glob("seq_*.gif"), key=lambda p: int(p.stem.split("_")[1]))

    @property
    def notebook(self) -> Path:
        return self.root / RUN_NOTEBOOK

    def last_validation(self) -> pd.DataFrame:
        """Per-frame PSNR of the last validation (columns frame, psnr, baseline_psnr)."""
        df = self.val_frames
        if df.empty:
            return df
        return df[df["epoch"] == df["epoch"].max()].reset_index(drop=True)


def psnr_measures(frames: pd.DataFrame) -> dict[str, float]:
    """Mean PSNR of one validation over all predicted frames, over frames 1-600, and of the
    last frame; the same three for the repeat-first-frame baseline."""
    if frames.empty:
        return {}
    scored = frames[frames["frame"] <= SCORED_LAST_FRAME]
    last = frames.loc[frames["frame"].idxmax()]
    return {
        "val_psnr_mean": float(frames["psnr"].mean()),
        "val_psnr_1_600": float(scored["psnr"].mean()),
        "val_psnr_last": float(last["psnr"]),
        "baseline_psnr_mean": float(frames["baseline_psnr"].mean()),
        "baseline_psnr_1_600": float(scored["baseline_psnr"].mean()),
        "baseline_psnr_last": float(last["baseline_psnr"]),
        "val_frames": int(frames["frame"].max()),
        # Runs made before SSIM was logged have no such columns: NaN, not an error.
        "val_ssim_mean": float(frames["ssim"].mean()) if "ssim" in frames else math.nan,
        "baseline_ssim_mean": float(frames["baseline_ssim"].mean()) if "baseline_ssim" in frames else math.nan,
    }


def run_summary(run_dir: Path) -> dict[str, Any]:
    """The headline numbers of one run folder (empty values where a file is missing).

    final_val_psnr: mean PSNR over the predicted frames of the last validation rollout;
    best_val_psnr: the best such mean over the epochs; baseline_psnr: the repeat-first-frame
    baseline on the same frames; test_*: the Kaggle-style score on the test split when
    the data has test ground truth (synthetic data does, the real data does not).
    """
    run = RunData(Path(run_dir))
    row: dict[str, Any] = {}
    epochs = run.epochs
    if not epochs.empty and "val_psnr" in epochs:
        validated = epochs.dropna(subset=["val_psnr"])
        if not validated.empty:
            row["final_val_psnr"] = float(validated["val_psnr"].iloc[-1])
            row["best_val_psnr"] = float(validated["val_psnr"].max())
            row["best_epoch"] = int(validated.loc[validated["val_psnr"].idxmax(), "epoch"])
            row["baseline_psnr"] = float(validated["baseline_psnr"].iloc[-1])
        row["epochs_done"] = int(epochs["epoch"].max())
        row["train_seconds"] = float(epochs["seconds"].sum())
        row["final_train_loss"] = float(epochs["train_loss"].iloc[-1])
        row["final_train_mse"] = float(epochs["train_mse"].iloc[-1])
    measures = psnr_measures(run.last_validation())
    for key in ("val_psnr_1_600", "val_psnr_last", "baseline_psnr_1_600", "baseline_psnr_last", "val_frames",
                "val_ssim_mean", "baseline_ssim_mean"):
        if key in measures:
            row[key] = measures[key]
    score = run.test_score
    if score:
        model, base = score.get("model", {}), score.get("repeat_first_frame_baseline", {})
        row["test_psnr"] = model.get("overall")
        row["test_public"] = model.get("public")
        row["test_private"] = model.get("private")
        row["test_baseline_psnr"] = base.get("overall")
        row["test_ssim"] = model.get("ssim_overall")  # absent in runs scored before SSIM was
        row["test_baseline_ssim"] = base.get("ssim_overall")
        frames = score.get("scored_frames")
        if frames:
            row["test_frames"] = f"{frames[0]}-{frames[1]}"
    return row


@dataclass
class SweepData:
    """A sweep folder: runs/<sweep>/ with sweep.json, summary.csv and one folder per run."""

    root: Path
    info: dict[str, Any] = field(default_factory=dict)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def name(self) -> str:
        return self.info.get("name", self.root.name)

    @property
    def finished(self) -> pd.DataFrame:
        """Summary rows of runs that finished (status done or skipped)."""
        if self.summary.empty:
            return self.summary
        return self.summary[self.summary["status"].isin(["done", "skipped"])].reset_index(drop=True)

    @property
    def run_names(self) -> list[str]:
        return list(self.finished["run"]) if not self.finished.empty else []

    def run(self, name: str) -> RunData:
        return _run_cache(self.root / name, name)

    def runs_in_group(self, group: str) -> list[str]:
        """Finished runs tagged with `group` in the plan (e.g. 'kl', 'tf')."""
        df = self.finished
        if df.empty or "groups" not in df:
            return []
        return [r for r, g in zip(df["run"], df["groups"].fillna("")) if group in str(g).split()]

    def _concat(self, attribute: str, names: list[str] | None = None) -> pd.DataFrame:
        frames = []
        for name in names or self.run_names:
            df = getattr(self.run(name), attribute)
            if not df.empty:
                frames.append(df.assign(run=name))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def epochs(self, names: list[str] | None = None) -> pd.DataFrame:
        """All runs' train_log.csv, with a `run` column."""
        return self._concat("epochs", names)

    def iters(self, names: list[str] | None = None) -> pd.DataFrame:
        return self._concat("iters", names)

    def val_frames(self, names: list[str] | None = None) -> pd.DataFrame:
        return self._concat("val_frames", names)

    def last_validation(self, names: list[str] | None = None) -> pd.DataFrame:
        """Per-frame PSNR of each run's last validation, with run, base (plan run) and seed columns."""
        frames = []
        meta = self.finished.set_index("run") if not self.finished.empty else pd.DataFrame()
        for name in names or self.run_names:
            df = self.run(name).last_validation()
            if df.empty:
                continue
            base = meta.loc[name, "base"] if "base" in meta and name in meta.index else name
            seed = meta.loc[name, "seed"] if "seed" in meta and name in meta.index else 0
            frames.append(df.assign(run=name, base=base, seed=seed))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def describe(self) -> str:
        """What was run, in one line: profile, data, epochs, seeds (for captions)."""
        return describe_sweep(self)


_RUNS: dict[Path, RunData] = {}


def _run_cache(root: Path, name: str) -> RunData:
    key = Path(root).resolve()
    if key not in _RUNS:
        _RUNS[key] = RunData(root, name)
    return _RUNS[key]


def load_sweep(sweep_dir: Path) -> SweepData:
    """Read a sweep folder. Without summary.csv (a sweep still running, or interrupted),
    the summary is rebuilt from the run folders that hold a completion marker."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: sweep folder not found; run `python -m lab4 sweep PLAN` first")
    for key in [k for k in _RUNS if k.is_relative_to(root.resolve())]:
        del _RUNS[key]  # read fresh files each time a sweep is loaded
    info = _read_json(root / SWEEP_FILE) or {}
    summary_path = root / SUMMARY_FILE
    if summary_path.is_file():
        # Only empty cells are missing: pandas would otherwise read kl_anneal_type "None" as NaN.
        summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""])
    else:
        rows = []
        for marker in sorted(root.glob(f"*/{RUN_MARKER}")):
            data = _read_json(marker) or {}
            rows.append({**data.get("row", {}), "run": marker.parent.name, "status": "done"})  # as summary.csv
        summary = pd.DataFrame(rows)
    if summary.empty:
        raise FileNotFoundError(f"{root}: no finished runs (no {SUMMARY_FILE} and no run folder with {RUN_MARKER})")
    return SweepData(root=root, info=info, summary=summary)


def latest_sweep(runs_root: Path = Path("runs")) -> Path:
    """The sweep folder under runs_root whose summary.csv was written last."""
    runs_root = Path(runs_root)
    candidates = sorted(runs_root.glob(f"*/{SUMMARY_FILE}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"no sweep under {runs_root}/ (no {runs_root}/*/{SUMMARY_FILE}); "
                                "run `make ablations` or `python -m lab4 sweep PLAN` first")
    return candidates[-1].parent


def _join(values) -> str:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    uniq = sorted({str(int(v)) if isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer() else str(v)
                   for v in values})
    return ", ".join(uniq)


def describe_sweep(sweep: SweepData) -> str:
    df = sweep.finished
    if df.empty:
        return f"sweep {sweep.name}: no finished runs"
    parts = [f"sweep '{sweep.name}'"]
    if "profile" in df:
        parts.append(f"profile {_join(df['profile'])}")
    if "data_root" in df:
        parts.append(f"data {_join(df['data_root'])}")
    if "num_epoch" in df:
        parts.append(f"{_join(df['num_epoch'])} epochs")
    if "seed" in df:
        seeds = _join(df["seed"])
        parts.append(f"seed{'s' if ',' in seeds else ''} {seeds}")
    parts.append(f"{len(df)} run{'s' if len(df) != 1 else ''}")
    return ", ".join(parts)
