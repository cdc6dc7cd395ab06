"""Ablation sweeps: run the training notebook once per run of a plan, with papermill.

    python -m lab4 sweep ablations            # lab4/plans/ablations.yaml, profile quick-chain (CPU)
    python -m lab4 sweep ablations-lab --jobs 4   # the template's settings, one GPU per job
    python -m lab4 sweep my_plan.yaml --seeds 0,1,2
    python -m lab4 sweep ablations-lab --data DIR --launcher slurm --slurm-partition gpu --slurm-time 4:00:00

A plan (YAML) names the runs; see lab4/plans/ablations.yaml for a commented example.
Each run's notebook executes into runs/<sweep>/<run>/train.ipynb, beside the run's
CSVs, checkpoints and test predictions; its output is also kept in notebook.log. A run
whose completion marker (sweep_done.json, written last and atomically) matches its
settings is skipped; a failing run is reported with its notebook and error while the
others go on, and the exit status is 1. The sweep ends by writing runs/<sweep>/summary.csv.

--launcher slurm (needs the `cluster` extra: submitit) submits the runs that have not finished as
one Slurm job array, one GPU per run, and waits for the jobs, printing their progress; submitit's
logs and the job ids go to runs/<sweep>/slurm/. Stopping the command leaves the jobs running: the
same command again waits for them (it submits only runs with no job queued or running) and then
writes summary.csv. Run it from a login node, with the project and its .venv on a filesystem the
compute nodes share.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lab4.commands import LAZY_COMMANDS
from lab4.config import PROFILES
from lab4.runs import RUN_NOTEBOOK
from lab4.sweep.knobs import describe_config
from lab4.sweep.plan import load_plan
from lab4.sweep.runner import run_sweep
from lab4.sweep.slurm import (DEFAULT_TIME_MIN, JOBS_FILE, KINDS, LOG_DIR, SlurmLauncher, SlurmOptions, parse_extra,
                              parse_time)
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
    launcher = make_launcher(args)  # options checked before anything is submitted
    started = time.perf_counter()
    try:
        outcomes, summary = run_sweep(plan, sweep_dir, jobs=args.jobs or 1, force=args.force,
                                      notebook=Path(args.notebook) if args.notebook else None,
                                      threads=args.threads, progress=not args.quiet,
                                      only=args.only.split(",") if args.only else None, launcher=launcher)
    except KeyboardInterrupt:
        if launcher is not None and launcher.name == "slurm":
            print(f"\nsweep {plan.name}: stopped waiting; the submitted jobs go on (their ids: "
                  f"{display_path(sweep_dir / LOG_DIR / JOBS_FILE)}). Run the same command again to wait for them "
                  "and write summary.csv", file=sys.stderr)
        else:
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


def make_launcher(args: argparse.Namespace) -> SlurmLauncher | None:
    """None for the local pool, else the cluster launcher with its options checked."""
    given = [flag for flag, dest in SLURM_FLAGS.items() if getattr(args, dest) not in (None, [])]
    if args.launcher == "local":
        if given:
            raise ValueError(f"{given[0]}: a Slurm option; it needs --launcher slurm")
        return None
    if args.jobs is not None:
        raise ValueError(f"--jobs {args.jobs}: the local pool's option; with --launcher {args.launcher} "
                         "every run is a job of the array (limit how many run at once with --slurm-parallel N)")
    options = SlurmOptions(partition=args.slurm_partition,
                           time_min=parse_time(args.slurm_time) if args.slurm_time else DEFAULT_TIME_MIN,
                           gpus=1 if args.slurm_gpus is None else args.slurm_gpus,
                           cpus=4 if args.slurm_cpus is None else args.slurm_cpus, mem_gb=args.slurm_mem,
                           parallel=args.slurm_parallel, extra=parse_extra(args.slurm or []))
    return SlurmLauncher(options, kind=args.launcher, threads=args.threads)


SLURM_FLAGS = {"--slurm-partition": "slurm_partition", "--slurm-time": "slurm_time", "--slurm-gpus": "slurm_gpus",
               "--slurm-cpus": "slurm_cpus", "--slurm-mem": "slurm_mem", "--slurm-parallel": "slurm_parallel",
               "--slurm": "slurm"}


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help=LAZY_COMMANDS["sweep"][1],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="a plan file, or the name of one in lab4/plans/ (ablations, ablations-lab, smoke)")
    p.add_argument("--jobs", type=int, help="runs at once in the local pool (default 1); with several GPUs "
                                            "each gets its own")
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
    p.add_argument("--launcher", choices=["local", *KINDS], default="local",
                   help="local: a process pool on this machine (default); slurm: one Slurm job array through "
                        "submitit (the cluster extra); submitit-local: that job array through submitit's local "
                        "executor on this machine, a check of the cluster path")
    slurm = p.add_argument_group("Slurm, with --launcher slurm (each job runs one run)")
    slurm.add_argument("--slurm-partition", metavar="NAME", help="the partition (default: the cluster's)")
    slurm.add_argument("--slurm-time", metavar="TIME", help="time limit per job: minutes, H:MM:SS or D-H:MM:SS "
                       f"(default {DEFAULT_TIME_MIN // 60}:00:00); a job that runs out is requeued and resumes")
    slurm.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs per job (default 1)")
    slurm.add_argument("--slurm-cpus", type=int, metavar="N", help="CPUs per job, also the run's threads (default 4)")
    slurm.add_argument("--slurm-mem", type=int, metavar="GB", help="memory per job in GB (default: the partition's)")
    slurm.add_argument("--slurm-parallel", type=int, metavar="N", help="jobs of the array running at once "
                                                                     "(default: as many as Slurm allows)")
    slurm.add_argument("--slurm", action="append", metavar="KEY=VALUE",
                       help="any other sbatch option, repeatable: account=myproject, qos=normal, constraint=a100")
    p.set_defaults(func=cmd_sweep)
