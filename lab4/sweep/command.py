"""Ablation sweeps: run the training notebook once per run of a plan, with papermill.

    python -m lab4 sweep ablations            # lab4/plans/ablations.yaml, profile quick-chain (CPU)
    python -m lab4 sweep ablations-lab --jobs 4   # the template's settings, one GPU per job
    python -m lab4 sweep my_plan.yaml --seeds 0,1,2

A plan (YAML) names the runs; see lab4/plans/ablations.yaml for a commented example.
Each run's notebook executes into runs/<sweep>/<run>/train.ipynb, beside the run's
CSVs, checkpoints and test predictions; its output is also kept in notebook.log. A run
whose completion marker (sweep_done.json, written last and atomically) matches its
settings is skipped; a failing run is reported with its notebook and error while the
others go on, and the exit status is 1. The sweep ends by writing runs/<sweep>/summary.csv.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lab4.commands import LAZY_COMMANDS
from lab4.config import PROFILES
from lab4.knobs import describe_config
from lab4.sweep.plan import load_plan
from lab4.sweep.runner import run_sweep
from lab4.run import RUN_NOTEBOOK
from lab4.workspace import display_path, resolve

def cmd_sweep(args: argparse.Namespace) -> int:
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    plan = load_plan(args.plan, profile=args.profile, seeds=seeds, data_root=args.data)
    if args.list:
        print(f"{plan.path}: sweep {plan.name}, profile {plan.profile}, {len(plan.runs)} runs")
        for run in plan.runs:
            print(f"  {run.name:<24} groups {','.join(run.groups) or '-':<6} {describe_config(run.config)}")
        return 0
    default_dir = Path("runs") / (plan.name if not args.profile or args.profile == plan.raw.get("profile")
                                  else f"{plan.name}-{args.profile}")
    sweep_dir = resolve(args.out) if args.out else resolve(default_dir)
    started = time.perf_counter()
    try:
        outcomes, summary = run_sweep(plan, sweep_dir, jobs=args.jobs, force=args.force,
                                      notebook=Path(args.notebook) if args.notebook else None,
                                      threads=args.threads, progress=not args.quiet,
                                      only=args.only.split(",") if args.only else None)
    except KeyboardInterrupt:
        print(f"\nsweep {plan.name} interrupted; run the same command again to go on: finished runs are "
              "skipped, interrupted ones resume from their last checkpoint", file=sys.stderr)
        return 130
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"\nsweep {plan.name}: {counts['done']} ran, {counts['skipped']} skipped (finished earlier), "
          f"{counts['failed']} failed, in {time.perf_counter() - started:.0f}s; summary: {display_path(summary)}")
    for outcome in failed:
        print(f"  FAILED {outcome.run.name}: {outcome.error}\n"
              f"         see {display_path(sweep_dir / outcome.run.name / RUN_NOTEBOOK)}")
    return 1 if failed else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help=LAZY_COMMANDS["sweep"][1],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="a plan file, or the name of one in lab4/plans/ (ablations, ablations-lab, smoke)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once; with several GPUs each gets its own")
    p.add_argument("--profile", choices=list(PROFILES), help="override the plan's profile (the sweep's "
                                                             "folder becomes runs/<name>-<profile>)")
    p.add_argument("--seeds", help="comma-separated seeds for every run, e.g. 0,1,2 (overrides the plan)")
    p.add_argument("--data", help="dataset folder for every run (overrides the plan and profile)")
    p.add_argument("--out", help="the sweep's folder (default runs/<plan name>)")
    p.add_argument("--only", help="comma-separated run names to run (plan names or <name>-s<seed>)")
    p.add_argument("--force", action="store_true", help="run every run again, finished or not")
    p.add_argument("--threads", type=int, help="CPU threads per run (default: all cores split across the jobs)")
    p.add_argument("--notebook", help="the training notebook (default notebooks/train.ipynb)")
    p.add_argument("--list", action="store_true", help="print the runs of the plan and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
