"""Ablation sweeps: the training notebook once per run of a plan (papermill).

plan: reading and checking a plan; runner: running its runs, `jobs` at a time, skipping those
finished; workers: the process each run's notebook executes in, and the sweep folder's lock;
summary: summary.csv; slurm: the same runs as one Slurm job array (submitit, the `cluster` extra);
command: `python -m lab4 sweep` (its --help says how to use it); experiment: one run end to end, what
the training notebook calls; knobs: a run's settings as the notebook names them, and in words.
"""

from lab4.runs import ERROR_FILE, LOG_FILE, RUN_MARKER, RUN_NOTEBOOK, SUMMARY_FILE, SWEEP_FILE
from lab4.sweep.command import add_commands, cmd_sweep
from lab4.sweep.plan import PLANS_DIR, Plan, PlanError, RunSpec, find_plan, load_plan
from lab4.sweep.runner import (NOTEBOOK, WORKER_COMMAND, marker_matches, notebook_parameters,
                               run_sweep, visible_gpus)
from lab4.sweep.summary import Outcome, summary_row, write_summary
from lab4.sweep.workers import lock_folder, start_worker, stop_workers, worker_guard, worker_main

__all__ = [
    "ERROR_FILE", "LOG_FILE", "NOTEBOOK", "PLANS_DIR", "RUN_MARKER", "RUN_NOTEBOOK", "SUMMARY_FILE", "SWEEP_FILE",
    "WORKER_COMMAND", "Outcome", "Plan", "PlanError", "RunSpec", "add_commands", "cmd_sweep",
    "find_plan", "load_plan", "lock_folder", "marker_matches", "notebook_parameters", "run_sweep",
    "start_worker", "stop_workers", "summary_row", "visible_gpus", "worker_guard",
    "worker_main", "write_summary",
]
