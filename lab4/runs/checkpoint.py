"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically;
and the reading of a run folder's committed state (the rule is in the docstring of lab4.runs)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab4.io import atomic_link, atomic_path
from lab4.runs import RunPaths


class RunStateError(ValueError):
    """A run folder whose files disagree with its last commit; the message says what to do."""


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        # Through a Python file, so a full disk raises OSError(ENOSPC), not torch's RuntimeError.
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The payload of a checkpoint; mmap=True reads the tensors only when used (for a look at its
    epoch and history)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: file not found")
    try:
        # weights_only=False: the payload holds RNG states and plain-Python history.
        return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path}: could not be read as a lab4 checkpoint ({exc})") from exc


def best_epoch_of(state: dict[str, Any]) -> int | None:
    """The epoch whose model best.pt should hold, by the commit's own record; None before any
    validation. Checkpoints written before the record existed: the epoch of the best PSNR in history."""
    if "best_epoch" in state:
        return state["best_epoch"]
    best = state.get("best_psnr", -math.inf)
    for row in state.get("history", {}).get("epochs", []):
        if row.get("val_psnr") not in ("", None) and float(row["val_psnr"]) == best:
            return int(row["epoch"])
    return None


def holds(path: Path, epoch: int | None, best_psnr: float) -> bool:
    """Whether `path` is a readable checkpoint of `epoch` of the run whose best PSNR is `best_psnr`."""
    if epoch is None or not Path(path).is_file():
        return False
    try:
        state = load_checkpoint(path, mmap=True)
    except ValueError:
        return False
    return state.get("epoch") == epoch and state.get("best_psnr") == best_psnr


def committed(paths: RunPaths) -> dict[str, Any] | None:
    """last.pt's payload (tensors mapped, not read), or None when the run has committed no epoch."""
    return load_checkpoint(paths.last, mmap=True) if paths.last.is_file() else None


def publish(paths: RunPaths, state: dict[str, Any], per_save: int) -> None:
    """Bring best.pt and this epoch's periodic checkpoint up to last.pt (which holds `state`).

    Run after each commit, and again by --resume, in case a kill came between the commit and here."""
    epoch, best_psnr = state["epoch"], state["best_psnr"]
    best = best_epoch_of(state)
    if best == epoch and not holds(paths.best, epoch, best_psnr):
        atomic_link(paths.last, paths.best)
    if epoch % per_save == 0 and not holds(paths.periodic(epoch), epoch, best_psnr):
        atomic_link(paths.last, paths.periodic(epoch))


def restore(paths: RunPaths, state: dict[str, Any], per_save: int) -> list[str]:
    """Make the checkpoints agree with last.pt (`state`) before a run goes on; returns notes on
    what it could not restore."""
    publish(paths, state, per_save)
    notes = []
    for periodic in paths.checkpoints.glob("epoch_*.pt"):
        number = periodic.stem.split("_")[-1]
        if number.isdigit() and int(number) > state["epoch"]:
            periodic.unlink()  # an epoch that never committed: the run makes it again
    best = best_epoch_of(state)
    if best is not None and not holds(paths.best, best, state["best_psnr"]):
        if holds(paths.periodic(best), best, state["best_psnr"]):
            atomic_link(paths.periodic(best), paths.best)
        else:
            notes.append(f"note: {paths.best} does not hold epoch {best}, the run's best so far, and no "
                         "checkpoint of that epoch is left; `predict` will refuse it until a later epoch "
                         "beats it (or use --checkpoint last)")
    return notes


def checkpoint_for(paths: RunPaths, which: str) -> Path:
    """The file of a run folder that holds `which` ('best', 'last', an epoch, or a path), checked
    against the run's last commit, so a file left by an interrupted or overlapping run is never
    loaded as if it were the one asked for."""
    explicit = not (which in ("best", "last") or which.isdigit())
    if explicit:
        return paths.checkpoint(which)
    state = committed(paths)
    if state is None:
        raise FileNotFoundError(f"{paths.last}: no checkpoint; the run has not finished an epoch yet")
    epoch, best_psnr = state["epoch"], state["best_psnr"]
    if which == "last":
        return paths.last
    if which == "best":
        best = best_epoch_of(state)
        if best is None:
            return paths.last  # no validation has run yet
        if holds(paths.best, best, best_psnr):
            return paths.best
        if best == epoch:
            return paths.last  # the same model: the run stopped before best.pt was brought up to it
        raise RunStateError(
            f"{paths.best} does not hold epoch {best}, the best epoch the run recorded in {paths.last} "
            f"(epoch {epoch}): it was left by an interrupted or overlapping run; `train --resume` restores it "
            "where it can, and --checkpoint last loads the last epoch")
    number = int(which)
    path = paths.periodic(number)
    if number > epoch:
        raise RunStateError(f"{path}: epoch {number} is not part of the run, which has committed {epoch} "
                            f"epoch(s) ({paths.last}); resume it to go on")
    if holds(path, number, best_psnr_at(state, number)):
        return path
    if number == epoch:
        return paths.last
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: file not found")
    raise RunStateError(f"{path} is not epoch {number} of the run in {paths.root}: it was left by an interrupted "
                        "or overlapping run")


def best_psnr_at(state: dict[str, Any], epoch: int) -> float:
    """The best val PSNR the run had after `epoch`, from the history of a later commit."""
    scores = [float(row["val_psnr"]) for row in state.get("history", {}).get("epochs", [])
              if int(row["epoch"]) <= epoch and row.get("val_psnr") not in ("", None)]
    return max((score for score in scores if not math.isnan(score)), default=-math.inf)


def finished(paths: RunPaths) -> bool:
    """Whether the run finished: done.json and last.pt agree that every epoch was committed."""
    try:
        done = json.loads(paths.done.read_text())
        state = committed(paths)
    except (OSError, ValueError):
        return False
    if not isinstance(done, dict) or state is None:
        return False
    num_epoch = state.get("config", {}).get("num_epoch")
    return done.get("epochs") == state["epoch"] == num_epoch and done.get("best_epoch", best_epoch_of(state)) == \
        best_epoch_of(state)
