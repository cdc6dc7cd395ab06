"""One run end to end, for the training notebook (notebooks/train.ipynb) and the sweep.

The notebook's parameters cell names the run and its knobs; everything it does is a call
into this module: `build_config` -> `run_training` -> `run_test`, then a few plots from
`lab4.figures`. Keeping the logic here keeps the notebook thin and the logic tested.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from lab4.config import Config, make_config

if TYPE_CHECKING:
    from lab4.results import RunData

# The knobs the training notebook's parameters cell names one by one (None there means
# "the profile's value"). Any other config field goes through its `overrides` dict.
NOTEBOOK_KNOBS = (
    "num_epoch", "seed",
    "kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "kl_anneal_step",
    "tfr", "tfr_sde", "tfr_d_step", "tf_granularity",
)

EXISTING_MODES = ("resume", "restart", "error")


def workspace_root(start: Path | None = None) -> Path:
    """The project folder (holding pyproject.toml and lab4/): the one this package was
    loaded from (a checkout, or an editable install), else the first found from `start`
    (default: the current folder) upwards, else the current folder."""
    package_parent = Path(__file__).resolve().parent.parent
    candidates = [] if start else [package_parent]
    here = Path(start or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    for folder in candidates:
        if (folder / "pyproject.toml").is_file() and (folder / "lab4").is_dir():
            return folder
    return here


def resolve(path: str | os.PathLike) -> Path:
    """A path as given when absolute, else relative to the project folder, so a notebook
    opened from notebooks/ and one run by the sweep find the same data and runs."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else workspace_root() / path


def display_path(path: str | os.PathLike) -> str:
    """A path relative to the project folder when inside it (for captions and messages)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(workspace_root()))
    except ValueError:
        return str(path)


def build_config(profile: str = "quick", data_root: str | None = None, overrides: dict[str, Any] | None = None,
                 **knobs: Any) -> Config:
    """The run's config: the profile, then `overrides`, then every knob that is not None.

    data_root (when given, or the profile's) is made absolute against the project folder.
    """
    values = dict(overrides or {})
    unknown = sorted(set(knobs) - set(NOTEBOOK_KNOBS))
    if unknown:
        raise ValueError(f"unknown knob(s) {', '.join(unknown)}; put other config fields in `overrides`")
    values.update({k: v for k, v in knobs.items() if v is not None})
    if data_root:
        values["data_root"] = data_root
    cfg = make_config(profile, values)
    cfg.data_root = str(resolve(cfg.data_root))
    return cfg


def describe_ablation(cfg: Config) -> str:
    """The settings the report's ablations vary (KL annealing, teacher forcing), in one line."""
    tf = f"tfr {cfg.tfr:g}"
    if cfg.tfr > 0 and cfg.tfr_d_step > 0:
        tf += f" decaying by {cfg.tfr_d_step:g}/epoch from epoch {cfg.tfr_sde}"
    tf += f" (per {cfg.tf_granularity})"
    kl = f"KL {cfg.kl_anneal_type}"
    if cfg.kl_anneal_type in ("Cyclical", "Sigmoid"):
        cycles = f"{cfg.kl_anneal_cycle} cycle{'s' if cfg.kl_anneal_cycle != 1 else ''}"
        kl += f" ({cycles}, ratio {cfg.kl_anneal_ratio:g}, per {cfg.kl_anneal_step})"
    elif cfg.kl_anneal_type == "Monotonic":
        kl += f" (per {cfg.kl_anneal_step})"
    return f"{kl}; {tf}"


def describe_config(cfg: Config, profile: str | None = None) -> str:
    """What a run is, in one line: profile, data, epochs, seed, the ablation settings, the model."""
    head = f"profile {profile}, " if profile else ""
    return (f"{head}data {display_path(cfg.data_root)}, {cfg.num_epoch} epochs, seed {cfg.seed}; "
            f"{describe_ablation(cfg)}; model F{cfg.F_dim}/L{cfg.L_dim}/N{cfg.N_dim}/D{cfg.D_out_dim}, "
            f"batch {cfg.batch_size}, lr {cfg.lr:g}")


def run_training(cfg: Config, run_dir: str | os.PathLike, existing: str = "resume", progress: bool = True) -> RunData:
    """Train `cfg` into run_dir and return the run folder's data.

    existing: what to do when run_dir already holds a run:
      "resume"  (default) a finished run with the same config is kept as it is, an
                interrupted one continues from its last checkpoint; a run with another
                config is an error (nothing is overwritten by accident);
      "restart" start over;
      "error"   refuse.
    """
    from lab4.checkpoint import committed, finished
    from lab4.results import RunData
    from lab4.train import config_differences, train

    if existing not in EXISTING_MODES:
        raise ValueError(f"existing={existing!r}: expected one of {', '.join(EXISTING_MODES)}")
    run = RunData(Path(run_dir))
    paths = run.paths
    resume = force = False
    if existing == "restart":
        force = True
    elif existing == "resume" and paths.config.is_file():
        # The run's own commit is the reference; config.json where no epoch has finished yet.
        state = committed(paths)
        saved = state["config"] if state is not None else Config.load(paths.config).to_dict()
        detail = config_differences(saved, cfg)
        if detail:
            raise ValueError(f"{paths.root} holds a run with other settings ({detail}); choose another run "
                             "name, or set existing='restart' to start it over")
        if finished(paths):
            if progress:
                print(f"{display_path(paths.root)}: training already finished; using it as it is "
                      "(existing='restart' trains again)")
            return RunData(paths.root)
        resume = paths.last.is_file()
        force = not resume
    elif existing == "resume":
        force = True  # a folder with no config.json holds no run (e.g. only this notebook)
    if progress:
        print(("resuming" if resume else "training") + f" {display_path(paths.root)}: {describe_config(cfg)}",
              flush=True)
    train(cfg, paths.root, resume=resume, force=force, progress=progress)
    return RunData(paths.root)


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
    from lab4.predict import predict_test
    from lab4.results import RunData

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
