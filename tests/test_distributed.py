"""Two CPU processes with gloo under torchrun: ranks stay in sync, rank 0 writes a complete run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from lab4.runs import RunPaths
from lab4.runs.checkpoint import load_checkpoint
from tests.conftest import write_dataset


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "lab4", *args], capture_output=True, text=True, env=env, timeout=240)


def test_two_ranks_with_gloo(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, n_train=32, n_val=10, n_test=5, test_len=10, with_gt=True)
    run = tmp_path / "run"
    common = ["train", "--profile", "smoke", "--data", str(data), "--run-dir", str(run), "--quiet",
              "--set", "val_vi_len=10"]
    done = torchrun(*common)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = RunPaths(run)
    for f in (paths.config, paths.epoch_log, paths.iter_log, paths.val_log, paths.last, paths.best, paths.done):
        assert f.is_file(), f
    summary = json.loads(paths.done.read_text())
    assert summary["ranks"] == 2 and summary["ranks_in_sync"] is True
    with open(paths.epoch_log) as fh:
        assert [row["epoch"] for row in csv.DictReader(fh)] == ["1", "2"]  # one writer: no duplicate rows
    # 32 frames -> 8 clips of 4 -> 4 per rank -> 2 batches of 2 per rank and epoch
    state = load_checkpoint(paths.last)
    assert state["global_step"] == 4 and len(state["rng_ranks"]) == 2

    resumed = torchrun(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(paths.done.read_text())["ranks_in_sync"] is True
