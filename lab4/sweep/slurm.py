"""Sweeps on a Slurm cluster: `python -m lab4 sweep PLAN --launcher slurm` submits the runs that
have not finished as one job array through submitit, one GPU per run, and waits for them.

Each job calls the same per-run entry point as the local pool's threads (runner._execute: the
training notebook through papermill in a worker process, then the run's completion marker), so a
run is one thing wherever it runs, and the sweep's rules hold unchanged: finished runs are skipped
before anything is submitted, interrupted ones resume, summary.csv is written when the jobs end.
A job that times out or is preempted is requeued by submitit and resumes from its last checkpoint.
The job ids are kept in <sweep>/slurm/jobs.json beside submitit's logs, so running the same command
again after the submitting one was stopped waits for the jobs still queued or running instead of
submitting their runs twice. submitit is an optional dependency (the `cluster` extra).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from lab4.io import atomic_write_text
from lab4.sweep import runner
from lab4.sweep.plan import Plan, RunSpec
from lab4.sweep.summary import Outcome
from lab4.workspace import display_path

LOG_DIR = "slurm"           # submitit's folder inside the sweep's: pickles, sbatch files, logs
JOBS_FILE = "jobs.json"     # in LOG_DIR: each run's latest job id and config
# --launcher VALUE: the submitit executor it uses. submitit-local runs the same job array through
# submitit's local executor on this machine: a check of the cluster path without a cluster.
KINDS = {"slurm": "slurm", "submitit-local": "local"}
DEFAULT_TIME_MIN = 240
# sacct states of a job that will still run (anything else: it ended, or Slurm forgot it).
LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
               "RESIZING", "SUSPENDED", "STOPPED"}
# Options that have their own flag, so --slurm KEY=VALUE cannot set them behind its back.
OWN_FLAGS = {"partition": "--slurm-partition", "time": "--slurm-time", "t": "--slurm-time",
             "gpus-per-node": "--slurm-gpus", "gres": "--slurm-gpus", "cpus-per-task": "--slurm-cpus",
             "c": "--slurm-cpus", "mem": "--slurm-mem", "array": "--slurm-parallel",
             "output": "the log folder", "error": "the log folder", "job-name": "the sweep's name"}


class MissingExtra(ValueError):
    """submitit is not installed (a ValueError: the CLI reports it in one line)."""


def require_submitit(launcher: str = "slurm") -> ModuleType:
    """submitit, imported only when a cluster launcher is asked for."""
    try:
        import submitit
    except ImportError:
        raise MissingExtra(f"--launcher {launcher} needs submitit, the `cluster` extra: pip install -e '.[cluster]' "
                           "(or pip install submitit)") from None
    return submitit


def parse_time(text: str) -> int:
    """A Slurm time limit (MIN, MIN:SEC, H:MM:SS, D-H, D-H:MM, D-H:MM:SS) in whole minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ValueError(f"--slurm-time {text!r}: expected minutes or Slurm's H:MM:SS / D-H:MM:SS, e.g. 90 or 4:00:00")
    days, a, b, c = match.groups()
    if days is not None:
        seconds = ((int(days) * 24 + int(a)) * 60 + int(b or 0)) * 60 + int(c or 0)
    elif c is not None:
        seconds = (int(a) * 60 + int(b)) * 60 + int(c)
    else:
        seconds = int(a) * 60 + int(b or 0)
    if seconds <= 0:
        raise ValueError(f"--slurm-time {text!r}: expected a time limit above zero")
    return math.ceil(seconds / 60)


def parse_extra(items: list[str]) -> dict[str, str]:
    """--slurm KEY=VALUE options: any other sbatch option (account, qos, constraint, ...)."""
    extra: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key) or not value.strip():
            raise ValueError(f"--slurm {item!r}: expected KEY=VALUE, an sbatch option such as account=myproject")
        if key in OWN_FLAGS:
            raise ValueError(f"--slurm {item!r}: {key} is set by {OWN_FLAGS[key]}")
        extra[key] = value.strip()
    return extra


@dataclass
class SlurmOptions:
    """What each job of the array asks Slurm for."""

    partition: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    gpus: int = 1
    cpus: int = 4
    mem_gb: int | None = None
    parallel: int | None = None      # array tasks running at once (Slurm's %N); None: Slurm's limit
    extra: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        for flag, value, low in (("--slurm-gpus", self.gpus, 0), ("--slurm-cpus", self.cpus, 1),
                                 ("--slurm-mem", self.mem_gb, 1), ("--slurm-parallel", self.parallel, 1)):
            if value is not None and value < low:
                raise ValueError(f"{flag} {value}: expected a whole number of at least {low}")
        if self.partition is not None and not re.fullmatch(r"[A-Za-z0-9_.,-]+", self.partition):
            raise ValueError(f"--slurm-partition {self.partition!r}: expected a partition name (letters, digits, _ . - ,)")

    def describe(self) -> str:
        hours, minutes = divmod(self.time_min, 60)
        parts = [f"partition {self.partition}" if self.partition else "the default partition",
                 f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}", f"{self.cpus} CPUs"]
        parts += [f"{self.mem_gb} GB"] if self.mem_gb else []
        parts += [f"{hours}:{minutes:02d}:00 per job"]
        parts += [f"{self.parallel} at a time"] if self.parallel else []
        parts += [f"--{k}={v}" for k, v in self.extra.items()]
        return ", ".join(parts)


@dataclass
class SweepJob:
    """One run as a submitit job: runner._execute in the job's process, as the local pool does it."""

    plan: Plan
    sweep_dir: Path
    notebook: Path
    threads: int | None

    def __call__(self, run: RunSpec, existing: str) -> Outcome:
        printer = runner._Printer(1, run.name, enabled=False)  # status lines go to the job's log
        try:
            return runner._execute(run, self.plan, self.sweep_dir, self.notebook, existing,
                                   runner.run_env(self.threads), printer, {})
        finally:
            printer.close()

    def checkpoint(self, run: RunSpec, existing: str) -> Any:
        """Called by submitit on a timeout or preemption: the requeued job resumes the run."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, run, "resume")


class SlurmLauncher:
    """Submits a sweep's pending runs as one submitit job array and waits for them (runner.Launcher)."""

    def __init__(self, options: SlurmOptions, kind: str = "slurm", threads: int | None = None,
                 poll_s: float | None = None):
        if kind not in KINDS:
            raise ValueError(f"--launcher {kind}: expected one of local, {', '.join(KINDS)}")
        options.check()
        self.submitit = require_submitit(kind)
        if KINDS[kind] == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--launcher slurm: no `sbatch` on this machine's PATH; run the sweep from a Slurm "
                             "login node (or use --launcher local)")
        self.name, self.options, self.cluster = kind, options, KINDS[kind]
        self.threads = threads if threads is not None else (options.cpus if self.cluster == "slurm" else None)
        self.poll_s = poll_s if poll_s is not None else (15.0 if self.cluster == "slurm" else 1.0)

    def where(self) -> str:
        if self.cluster == "local":
            return "as jobs of submitit's local executor on this machine"
        return f"as one Slurm job array ({self.options.describe()})"

    def executor(self, folder: Path, name: str) -> Any:
        """submitit's executor with the options applied (checked by submitit before any submission)."""
        executor = self.submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        gpus = self.options.gpus
        if self.cluster == "local":  # no GPU named that this machine lacks
            gpus = min(gpus, len(runner.visible_gpus()))
        params: dict[str, Any] = {"name": f"lab4-{name}", "timeout_min": self.options.time_min,
                                  "gpus_per_node": gpus, "tasks_per_node": 1, "nodes": 1,
                                  "cpus_per_task": self.options.cpus, "mem_gb": self.options.mem_gb,
                                  "slurm_partition": self.options.partition,
                                  "slurm_array_parallelism": self.options.parallel}
        if self.options.extra:
            params["slurm_additional_parameters"] = dict(self.options.extra)
        executor.update_parameters(**params)
        return executor

    def launch(self, todo: list[tuple[RunSpec, str]], plan: Plan, sweep_dir: Path, notebook: Path,
               printer: runner._Printer, force: bool) -> Iterator[Outcome]:
        folder = sweep_dir / LOG_DIR
        if not todo:
            printer.line("nothing to submit: every run finished earlier")
            return
        record = _read_jobs(folder)
        attached = {run.name: job for run, _ in todo if (job := self._live_job(folder, record, run)) is not None}
        if attached and force:
            raise ValueError(f"--force: the jobs of {', '.join(sorted(attached))} are still queued or running "
                             f"({', '.join(j.job_id for j in attached.values())}); scancel them first, or drop --force")
        submit = [(run, existing) for run, existing in todo if run.name not in attached]
        jobs: dict[str, Any] = dict(attached)
        for name, job in attached.items():
            printer.line(f"[{name}] job {job.job_id} is still queued or running: waiting for it")
        if submit:
            executor = self.executor(folder, plan.name)
            call = SweepJob(plan, sweep_dir, notebook, self.threads)
            try:
                submitted = executor.map_array(call, [r for r, _ in submit], [e for _, e in submit])
            except Exception as exc:  # noqa: BLE001 - sbatch said no (a bad partition, account, ...): its words
                said = [line.strip() for line in str(exc).splitlines() if line.strip()]
                raise ValueError(f"--launcher {self.name}: the submission failed: "
                                 f"{said[-1] if said else type(exc).__name__}") from exc
            for (run, _), job in zip(submit, submitted):
                jobs[run.name] = job
                record[run.name] = {"job_id": str(job.job_id), "kind": self.name, "config": run.config.to_dict()}
            atomic_write_text(folder / JOBS_FILE, json.dumps(record, indent=2, default=str) + "\n")
            first = str(submitted[0].job_id).split("_")[0]
            how = "local jobs" if self.cluster == "local" else f"{'array' if len(submit) > 1 else 'job'} {first}"
            printer.line(f"submitted {len(submit)} run(s) ({how}); logs in {display_path(folder)}; "
                         f"job ids in {display_path(folder / JOBS_FILE)}")
            for run, _ in submit:
                printer.line(f"[{run.name}] job {jobs[run.name].job_id} (log {display_path(jobs[run.name].paths.stdout)})")
        runs = {run.name: run for run, _ in todo}
        try:
            yield from self._wait(jobs, runs, printer)
        except BaseException:
            if self.cluster == "local":  # this machine's jobs stop with the sweep; a cluster's go on
                for job in jobs.values():
                    job.cancel(check=False)
            raise

    def _wait(self, jobs: dict[str, Any], runs: dict[str, RunSpec], printer: runner._Printer) -> Iterator[Outcome]:
        """Each job's outcome as it ends, with a line whenever a job's state changes."""
        pending, states = dict(jobs), {}
        while pending:
            for name, job in list(pending.items()):
                if job.done():
                    del pending[name]
                    yield _collect(job, runs[name])
                    continue
                state = str(job.state).split(" ")[0]
                if state not in ("UNKNOWN", states.get(name)):
                    states[name] = state
                    printer.line(f"[{name}] job {job.job_id}: {state}")
            if pending:
                time.sleep(self.poll_s)

    def _live_job(self, folder: Path, record: dict[str, Any], run: RunSpec) -> Any | None:
        """The run's recorded Slurm job when it is still queued or running with the same settings."""
        entry = record.get(run.name)
        if self.cluster != "slurm" or not isinstance(entry, dict) or entry.get("kind") != self.name:
            return None
        if entry.get("config") != json.loads(json.dumps(run.config.to_dict(), default=str)):
            return None
        job = self.submitit.SlurmJob(folder=folder, job_id=str(entry["job_id"]))
        if job.paths.result_pickle.exists():
            return None
        try:
            state = str(job.watcher.get_state(job.job_id, mode="force")).split(" ")[0].upper()
        except Exception:  # noqa: BLE001 - no sacct answer: treat it as gone and submit again
            return None
        return job if state in LIVE_STATES else None


def _collect(job: Any, run: RunSpec) -> Outcome:
    """The job's Outcome, or a failed one saying how the job ended when it returned none."""
    try:
        result = job.result()
    except Exception as exc:  # noqa: BLE001 - timed out, cancelled, or died outside the run
        if type(exc).__name__ == "FailedJobError":  # raised in the job, outside the notebook: its last line
            parts = str(exc).split("-" * 22)  # submitit's frame around the job's traceback
            lines = [line.strip() for line in (parts[1] if len(parts) > 1 else parts[0]).splitlines() if line.strip()]
            how = f"raised {lines[-1]}" if lines else "raised an error"
        else:
            how = f"ended without a result (state {str(job.state).split(' ')[0]})"
        return Outcome(run, "failed", error=f"job {job.job_id} {how}; see {display_path(job.paths.stderr)}")
    if not isinstance(result, Outcome):
        return Outcome(run, "failed", error=f"job {job.job_id} returned {type(result).__name__}, not a run's outcome")
    return result


def _read_jobs(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / JOBS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}
