"""Run folders: their layout and the rule that keeps them true (here, read by the trainer, the CLI, the
sweep and the analysis); checkpoint: what an epoch's commit holds, written and read back; rules: whether
a folder's run is the run a config would make, what a start does with it, and the folder's lock;
results: run and sweep folders read back as pandas tables.

runs/<name>/
    config.json            every knob of the run (data_root absolute, so it resumes from any folder)
    train_log.csv          one row per epoch
    iter_log.csv           one row every `log_every` iterations (appended live: it may run ahead of last.pt)
    val_psnr.csv           PSNR and SSIM of every rollout frame at every validation, with the baseline's
    val_rollout.npz        the last validation rollout (uint8 frames, labels, ground truth, its epoch)
    checkpoints/           last.pt, best.pt (by val PSNR), epoch_NNN.pt every per_save epochs
    test/                  submission.csv, predictions.npy, seq_<i>.gif, score.json
    done.json              written when training finished
    .lock                  held by the `train` writing the folder (pid, host, command inside)

How a run folder stays true, whatever stops the process:
- Every file is written atomically (lab4.io.atomic_path): it is the old file or the new one.
- checkpoints/last.pt is the run's state: an epoch is part of the run once, and only once, its
  last.pt has been renamed into place (the commit). Its payload names the epoch, the best epoch
  and the best PSNR, and holds the whole history the logs are made of.
- What last.pt cannot restore is written before it (val_rollout.npz, stamped with its epoch).
  What it can restore is written after it: train_log.csv and val_psnr.csv (from its history),
  best.pt and epoch_NNN.pt (links to it, when that epoch is the best or a periodic one), then
  done.json after the final epoch. A kill between these leaves them behind last.pt, never ahead.
- `train --resume` restores them from last.pt before going on, drops checkpoints of epochs
  last.pt has not committed, and clears the temporary files a kill left. Readers trust only what
  agrees with last.pt: `predict` loads best.pt only when its epoch and PSNR are the ones last.pt
  records (else last.pt when that is the best epoch, else it refuses), and done.json counts only
  when its epochs equal last.pt's, which equal the run's num_epoch.
- One `train` at a time: it holds .lock (flock, released by the system when the process dies)
  from before its first check to its last write.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lab4.io import atomic_write_text

EPOCH_COLUMNS = ["epoch", "lr", "tfr", "teacher_forced", "beta", "train_loss", "train_mse", "train_kl",
                 "val_mse", "val_psnr", "baseline_psnr", "val_ssim", "baseline_ssim", "seconds",
                 "train_frames_per_s"]
ITER_COLUMNS = ["epoch", "iteration", "loss", "mse", "kl", "beta", "teacher_forced"]
VAL_COLUMNS = ["epoch", "frame", "psnr", "baseline_psnr", "ssim", "baseline_ssim"]

# What a start does with a folder that already holds a run (the training notebook's
# `existing`, `train --existing`; lab4.runs.rules.how_to_start applies it):
#   "resume"  keep a finished run of the same config as it is, continue an interrupted one, refuse a run
#             of other settings (nothing is overwritten by accident);
#   "restart" start over;
#   "error"   refuse any folder that holds a run.
EXISTING_MODES = ("resume", "restart", "error")


# A sweep's folder (lab4.sweep writes it, lab4.runs.results reads it): runs/<sweep>/ holds one run
# folder per run of its plan, and these files.
SWEEP_FILE = "sweep.json"          # runs/<sweep>/: the plan and how it was run, written when the sweep starts
SUMMARY_FILE = "summary.csv"       # runs/<sweep>/: one row per run, written when the sweep ends
RUN_MARKER = "sweep_done.json"     # runs/<sweep>/<run>/: the run's notebook finished; written last, atomically
RUN_NOTEBOOK = "train.ipynb"       # runs/<sweep>/<run>/: the executed training notebook
LOG_FILE = "notebook.log"          # runs/<sweep>/<run>/: the notebook's output, as it came
ERROR_FILE = "sweep_error.json"    # runs/<sweep>/<run>/: why the run's notebook failed


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def epoch_log(self) -> Path:
        return self.root / "train_log.csv"

    @property
    def iter_log(self) -> Path:
        return self.root / "iter_log.csv"

    @property
    def val_log(self) -> Path:
        return self.root / "val_psnr.csv"

    @property
    def val_rollout(self) -> Path:
        return self.root / "val_rollout.npz"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    def periodic(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:03d}.pt"

    @property
    def test(self) -> Path:
        return self.root / "test"

    @property
    def done(self) -> Path:
        return self.root / "done.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def checkpoint(self, which: str) -> Path:
        """'last', 'best', an epoch number, or a path."""
        if which in ("last", "best"):
            return getattr(self, which)
        if which.isdigit():
            return self.periodic(int(which))
        return Path(which)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


class CsvAppender:
    """Appends rows as they come, so a long epoch can be watched live."""

    def __init__(self, path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]] = ()):
        # Start from the rows the checkpoint vouches for: rows an interrupted epoch
        # appended after it are dropped, as that epoch runs again.
        write_csv(path, columns, rows)
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=list(columns), extrasaction="ignore",
                                      lineterminator="\n")

    def append(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
