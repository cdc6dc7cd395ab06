"""One run end to end, for the training notebook (notebooks/train.ipynb) and the sweep.

The notebook's parameters cell names the run and its knobs; everything it does is a call
into this module: `build_config` -> `run_training` -> `run_test`, then a few plots from
`lab4.report.figures`. Keeping the logic here keeps the notebook thin and the logic tested.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lab4.train
from lab4.config import Config
from lab4.predict import predict_test
from lab4.runs.results import RunData
from lab4.runs.rules import how_to_start
# The notebook calls these through this module; they live where the sweep shares them.
from lab4.sweep.knobs import NOTEBOOK_KNOBS, build_config, describe_ablation, describe_config  # noqa: F401
from lab4.workspace import display_path, resolve, workspace_root  # noqa: F401


def run_training(cfg: Config, run_dir: str | os.PathLike, existing: str = "resume", progress: bool = True) -> RunData:
    """Train `cfg` into run_dir and return the run folder's data. existing: what to do when run_dir
    already holds a run (lab4.runs.EXISTING_MODES): "resume" (default) keeps a finished run of the
    same config as it is, continues an interrupted one and refuses a run of other settings;
    "restart" starts over; "error" refuses."""
    root = Path(run_dir)
    start = how_to_start(root, cfg, existing)
    if start.keep:
        if progress:
            print(f"{display_path(root)}: training already finished; using it as it is "
                  "(existing='restart' trains again)")
        return RunData(root)
    if progress:
        print(("resuming" if start.resume else "training") + f" {display_path(root)}: {describe_config(cfg)}",
              flush=True)
    lab4.train.train(cfg, root, resume=start.resume, force=start.force, progress=progress)
    return RunData(root)


@dataclass
class TestResult:
    out_dir: Path
    gifs: list[Path]
    score: dict[str, Any] | None      # model: public/private/overall/per_sequence (PSNR), ssim_<the same>;
                                      # baseline: the same
    scored_frames: str                # e.g. "1-600" (what the score averages over)


def run_test(run_dir: str | os.PathLike, checkpoint: str = "best", gifs: bool = True) -> TestResult:
    """Roll out the test sequences with the run's model: submission.csv, predictions.npy,
    GIFs in <run>/test/, and the score against test ground truth when the data has it."""
    pred = predict_test(Path(run_dir), which=checkpoint, gifs=gifs)
    run = RunData(Path(run_dir))
    score = None
    frames = ""
    if pred.score is not None and pred.baseline is not None:
        score = {"model": pred.score.__dict__, "baseline": pred.baseline.__dict__}
        saved = run.test_score or {}
        if saved.get("scored_frames"):
            frames = "-".join(str(v) for v in saved["scored_frames"])
    return TestResult(out_dir=pred.out_dir, gifs=run.gifs, score=score, scored_frames=frames)


def _number(value: Any, decimals: int, unit: str = "") -> str:
    """A number to `decimals` places with its unit; "n/a" when missing or NaN."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{value:.{decimals}f}{unit}"


def _db(value: Any) -> str:
    return _number(value, 2, " dB")


def validation_report(run: RunData) -> str:
    """The run's validation numbers, each with what it was measured on."""
    cfg = run.config
    last = run.last_validation()
    if last.empty:
        return "no validation has run yet"
    epoch = int(run.val_frames["epoch"].max())
    frames = int(last["frame"].max())
    epochs = run.epochs.dropna(subset=["val_psnr"])
    best = epochs.loc[epochs["val_psnr"].idxmax()]
    data = display_path(cfg.get("data_root", "?"))
    return (f"validation rollout of {data}/val: {frames + 1} frames, the first given, z={cfg.get('val_z', '?')}\n"
            f"  mean PSNR over frames 1-{frames} after epoch {epoch}: {_db(last['psnr'].mean())}"
            f" (repeat-first-frame baseline {_db(last['baseline_psnr'].mean())})\n"
            f"  best epoch {int(best['epoch'])}: {_db(best['val_psnr'])}; last frame {_db(last['psnr'].iloc[-1])}"
            f" (baseline {_db(last['baseline_psnr'].iloc[-1])})")


def test_report(result: TestResult, data_root: str) -> str:
    if result.score is None:
        return (f"no test ground truth in {display_path(data_root)} (the real data has none): "
                f"upload {display_path(result.out_dir / 'submission.csv')} to Kaggle for a score")
    model, base = result.score["model"], result.score["baseline"]
    n = len(model["per_sequence"])
    return (f"test score on {display_path(data_root)}/test ({n} sequences, mean per-frame PSNR over frames "
            f"{result.scored_frames or '1-600'}, as Kaggle scores, and mean per-frame SSIM beside it):\n"
            f"  model    public {_db(model['public'])}, private {_db(model['private'])}, all {_db(model['overall'])}"
            f"; {_ssim_splits(model)}\n"
            f"  repeat-first-frame baseline: public {_db(base['public'])}, private {_db(base['private'])}, "
            f"all {_db(base['overall'])}; {_ssim_splits(base)}")


def _ssim_splits(score: dict[str, Any]) -> str:
    # .get: a score dict read from a score.json written before SSIM was scored has no SSIM fields.
    return (f"SSIM public {_number(score.get('ssim_public'), 3)}, private {_number(score.get('ssim_private'), 3)}, "
            f"all {_number(score.get('ssim_overall'), 3)}")


def gif_links(run: RunData, relative_to: str | os.PathLike | None = None) -> str:
    """Markdown links to the run's test GIFs (pose | prediction | ground truth when known)."""
    base = Path(relative_to or Path.cwd()).resolve()
    links = []
    for gif in run.gifs:
        target = os.path.relpath(gif.resolve(), base)
        links.append(f"[{gif.stem}]({Path(target).as_posix()})")
    return " · ".join(links) if links else "(no GIFs)"
