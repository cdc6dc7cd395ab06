"""The rules of a run folder (its layout is lab4.runs's), in one place: whether a saved run is
the run a config would make (`run_differences`), what a folder holds compared with a config (new,
an interrupted run to resume, a finished one, a run of other settings: `folder_state`), what a
start does with it (`how_to_start`, the `existing` modes), the checks `train` makes before its
first step and what it does to the folder then, the config `train --resume` continues with, and
the folder's lock. The trainer (lab4.train), the notebook's `run_training` (lab4.sweep.experiment),
the CLI (and so `make train`) and the sweep go through these functions."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab4 import data as lab4_data
from lab4.config import Config, config_changes, from_dict, make_config
from lab4.io import FolderLock, remove_stale_temps
from lab4.runs import EXISTING_MODES, RunPaths
from lab4.runs.checkpoint import committed, finished, restore
from lab4.workspace import resolve


class RunExists(FileExistsError):
    pass


# Config fields retired with the first-frame / composite strategies: a run saved before then records
# them, and at these values they did what every run does now, so reading its config drops them. At
# any other value the run used a retired option: its config names an unknown field.
RETIRED_FIELDS: dict[str, Any] = {"reference": "previous", "reference_label": False, "paint_weight": 0.0,
                                  "mask_weight": 0.0, "mask_target": "changed"}


def without_retired(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config's fields, less the retired ones that held their inert values (RETIRED_FIELDS)."""
    return {key: value for key, value in saved.items()
            if key not in RETIRED_FIELDS or value != RETIRED_FIELDS[key]}


def load_run_config(path: Path) -> Config:
    """A run folder's config.json as a Config (see RETIRED_FIELDS)."""
    return from_dict(without_retired(json.loads(Path(path).read_text())))


@dataclass(frozen=True)
class FolderState:
    """What a run folder holds, compared with the config a run would use there."""

    kind: str         # "new": no run to keep; "resume": an interrupted run of this config;
                      # "finished": a finished run of this config; "changed": a run of other settings
    detail: str = ""  # for "changed": the fields that differ ("field: saved X, now Y")


@dataclass(frozen=True)
class Start:
    """How `train` starts in a folder: go on from its last commit (resume), clear what a run left
    there (force), or neither; keep: the folder holds this run finished, so there is nothing to do."""

    resume: bool = False
    force: bool = False
    keep: bool = False


def run_differences(saved: dict[str, Any], cfg: Config, recorded_root: str | None = None) -> str:
    """'field: saved X, now Y' for every field where a saved run's config differs from `cfg`; empty
    when `cfg` would make that run. The data is the same when its absolute path is, or when the run
    recorded it relative to its project (`recorded_root`, e.g. data/synthetic) and that path in this
    project is cfg's: a run finished in a checkout at another path, on the dataset inside it."""
    detail = config_differences(saved, cfg)
    then, now = saved.get("data_root"), absolute(cfg.data_root)
    if isinstance(then, str) and absolute(then) != now:
        moved_checkout = isinstance(recorded_root, str) and not Path(recorded_root).is_absolute() \
            and resolve(recorded_root) == Path(now)
        if not moved_checkout:
            detail = ", ".join(filter(None, [detail, f"data_root: saved {then!r}, now {now!r}"]))
    return detail


def saved_config(paths: RunPaths) -> dict[str, Any] | None:
    """The config of the run in a folder: its last commit's (last.pt), with config.json's data_root,
    which follows the data when a resume moved it, before the next commit does; config.json where
    no epoch has finished yet; None where there is neither (the folder holds no run)."""
    state = committed(paths)
    try:
        on_disk = json.loads(paths.config.read_text()) if paths.config.is_file() else None
    except ValueError as exc:
        raise ValueError(f"{paths.config}: not JSON ({exc})") from None
    if state is None:
        if on_disk is not None and not isinstance(on_disk, dict):
            raise ValueError(f"{paths.config}: expected a JSON object of config fields")
        return on_disk
    saved = dict(state["config"])
    if isinstance(on_disk, dict) and on_disk.get("data_root"):
        saved["data_root"] = on_disk["data_root"]
    return saved


def folder_state(run_dir: Path, cfg: Config) -> FolderState:
    """The one rule for a run folder: the run's own config (`saved_config`) against `cfg`, and
    whether the run finished (lab4.runs's rule) or can go on from its last commit."""
    paths = RunPaths(Path(run_dir))
    try:
        saved = saved_config(paths)
    except ValueError as exc:
        return FolderState("changed", str(exc))
    if saved is None:
        return FolderState("new")
    detail = run_differences(saved, cfg)
    if detail:
        return FolderState("changed", detail)
    if finished(paths):
        return FolderState("finished")
    return FolderState("resume" if paths.last.is_file() else "new")


def how_to_start(run_dir: Path, cfg: Config, existing: str) -> Start:
    """What a start in `existing` mode (see EXISTING_MODES) does with run_dir; raises when it refuses."""
    if existing not in EXISTING_MODES:
        raise ValueError(f"existing={existing!r}: expected one of {', '.join(EXISTING_MODES)}")
    if existing == "restart":
        return Start(force=True)
    if existing == "error":
        return Start()  # prepare_run_dir refuses a folder that holds a run
    state = folder_state(run_dir, cfg)
    if state.kind == "changed":
        raise ValueError(f"{run_dir} holds a run with other settings ({state.detail}); choose another run "
                         "folder, or start it over (existing='restart', train --force)")
    if state.kind == "finished":
        return Start(keep=True)
    if state.kind == "resume":
        return Start(resume=True)
    return Start(force=True)  # "new": whatever the folder holds is no run


def prepare_run_dir(run_dir: Path, cfg: Config, resume: bool, force: bool, write: bool = True) -> RunPaths:
    """Refuse to mix two runs in one folder; nothing a user made is overwritten by accident.

    With --resume the run's own commit (last.pt) is the reference: `cfg` must equal the config
    inside it, and config.json must too; only data_root may differ, when the new folder holds the
    same layout and frame counts. With write=True (rank 0, holding the folder's lock) the folder is
    then made to agree with last.pt (see lab4.runs); write=False only checks (the other ranks of a
    distributed run, and the checks before the lock)."""
    paths = RunPaths(Path(run_dir))
    if resume:
        state = committed(paths)
        if state is None:
            raise FileNotFoundError(f"--resume: {paths.last} not found; nothing to resume in {paths.root} "
                                    "(no epoch finished): start it over with --force")
        detail = config_differences(state["config"], cfg)
        if detail:
            raise ValueError(f"--resume {paths.root}: the config differs from the saved one ({detail}); "
                             "resume with the same settings, or start a new run folder")
        if paths.config.is_file():
            mixed = config_differences(json.loads(paths.config.read_text()), cfg)
            if mixed:
                raise ValueError(f"{paths.root}: config.json and checkpoints/last.pt belong to different runs "
                                 f"({mixed}); the folder mixes two runs: start it over with --force")
        saved_root = absolute(state["config"]["data_root"])
        if saved_root != cfg.data_root:
            check_same_data(saved_root, cfg.data_root, state.get("data"))
        if write:
            for stale in (paths.root, paths.checkpoints, paths.test):
                remove_stale_temps(stale)
            for note in restore(paths, state, cfg.per_save):
                print(note, file=sys.stderr)
            if not finished(paths):
                paths.done.unlink(missing_ok=True)
            if saved_root != cfg.data_root or not paths.config.is_file() or \
                    json.loads(paths.config.read_text()).get("data_root") != cfg.data_root:
                cfg.save(paths.config)
        return paths
    if paths.root.exists() and any(p.name != paths.lock.name and not p.name.endswith(".tmp")
                                   for p in paths.root.iterdir()):
        if not force:
            raise RunExists(f"run folder {paths.root} already holds a run: pass --resume to continue it, "
                            "--force to start it over, or choose another --run-dir")
        if not write:
            return paths
        for stale in (paths.last, paths.best, paths.done, paths.config, paths.val_rollout):
            stale.unlink(missing_ok=True)
        for old in paths.checkpoints.glob("epoch_*.pt"):
            old.unlink()
    if write:
        paths.root.mkdir(parents=True, exist_ok=True)
        for stale in (paths.root, paths.checkpoints, paths.test):
            remove_stale_temps(stale)
        cfg.save(paths.config)
    return paths


def absolute(path: str) -> str:
    # A config saved before data_root was stored absolute holds it relative to the folder the run
    # was started from; read from here, as the run would have been resumed before.
    return os.path.abspath(os.path.expanduser(path))


def config_differences(saved: dict[str, Any], cfg: Config) -> str:
    """'field: saved X, now Y' for every field but data_root where `cfg` differs from a saved config
    (fields added to Config since it was saved take their defaults); empty when they agree."""
    try:
        then = from_dict({**without_retired(saved), "data_root": cfg.data_root})
    except (ValueError, TypeError) as exc:
        return f"the saved config cannot be read by this lab4: {exc}"
    return config_changes(then, cfg)


def data_record(root: Path) -> dict[str, Any]:
    """What a run's checkpoint records of its data, to check a moved copy against on --resume."""
    train_frames = len(lab4_data.split_files(root, "train")[0])
    return {"train_frames": train_frames, "val_frames": len(lab4_data.split_files(root, "val")[0]),
            "train_video_lengths": lab4_data.train_video_lengths(root, train_frames)}


def check_same_data(saved_root: str, new_root: str, record: dict[str, Any] | None) -> None:
    """Accept `new_root` in place of the run's data only when it has the layout and frame counts the
    run trained on; refuse in one line otherwise."""
    lab4_data.check_layout(Path(new_root), ("train", "val"))
    if record is None:  # a checkpoint from before the record: compare with the old folder, if it is there
        if not Path(saved_root).is_dir():
            raise ValueError(f"--data {new_root}: cannot check it against the run's data: {saved_root} is gone and "
                             "the run's last.pt (from an older lab4) does not record its frame counts")
        record = data_record(Path(saved_root))
    now = data_record(Path(new_root))
    if now != record:
        detail = ", ".join(f"{key} {record.get(key)} vs {now[key]}" for key in now if now[key] != record.get(key))
        raise ValueError(f"--data {new_root}: not the data this run trained on ({detail}); resume with the run's "
                         f"data ({saved_root}) or a copy of it")
    print(f"note: the run's data moves from {saved_root} to {new_root} (same layout and frame counts)", flush=True)


def resume_config(run_dir: Path, profile: str | None = None, overrides: dict[str, Any] | None = None,
                  data_root: str | None = None) -> Config:
    """The config `train --resume` continues with: the run's own (from its last commit, else its
    config.json), with `overrides` on top (which the resume then refuses if they change anything)
    and `data_root` replacing the run's data (checked when the run starts). With a profile, that
    profile's config must be the run's."""
    paths = RunPaths(Path(run_dir))
    saved = saved_config(paths)
    if saved is None:
        raise FileNotFoundError(f"--resume: {paths.last} not found; nothing to resume in {paths.root}")
    saved["data_root"] = absolute(saved["data_root"])
    if profile is not None:
        detail = config_differences(saved, make_config(profile, {**(overrides or {}), "data_root": saved["data_root"]}))
        if detail:
            raise ValueError(f"--resume {paths.root} --profile {profile}: the run was not made with that profile "
                             f"({detail}); leave --profile out to resume with the run's own config")
    cfg = from_dict({**without_retired(saved), **(overrides or {})})
    if data_root:
        cfg.data_root = absolute(data_root)
    return cfg


def lock_run_dir(run_dir: Path) -> FolderLock:
    """The folder's lock, held by the `train` writing it; a note when it was taken over or cannot lock."""
    lock = FolderLock.acquire(RunPaths(run_dir).lock, "lab4 train")
    if lock.note:
        print(lock.note, file=sys.stderr, flush=True)
    return lock
