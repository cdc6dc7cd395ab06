"""Running a sweep: every run of the plan that has not finished, `jobs` at a time (one GPU
each where there are several), each in a worker process (lab4.sweep.workers); a failing run is
reported while the others go on; summary.csv at the end. A launcher (lab4.sweep.slurm) can take
the place of the local pool: the same runs, skipped and resumed by the same rules, each done by
the same _execute, elsewhere."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol

from lab4.io import atomic_write_text
from lab4.runs import ERROR_FILE, LOG_FILE, RUN_MARKER, RUN_NOTEBOOK, SWEEP_FILE
from lab4.runs.results import run_summary
from lab4.runs.rules import folder_state, run_differences
from lab4.sweep.knobs import NOTEBOOK_KNOBS
from lab4.sweep.plan import Plan, RunSpec
from lab4.sweep.summary import Outcome, headline, summary_row, write_summary
from lab4.sweep.workers import lock_folder, start_worker, stop_workers
from lab4.workspace import display_path, resolve

NOTEBOOK = Path("notebooks") / "train.ipynb"
# How the sweep starts a worker; the fault tests put a stand-in here.
WORKER_COMMAND = [sys.executable, "-m", "lab4.sweep", "--worker"]


def notebook_parameters(run: RunSpec, plan: Plan, sweep_dir: Path, existing: str) -> dict[str, Any]:
    """The papermill parameters of one run: named knobs where the notebook has them, the
    rest of the run's settings in `overrides`."""
    knobs = {k: v for k, v in run.settings.items() if k in NOTEBOOK_KNOBS}
    overrides = {k: v for k, v in run.settings.items() if k not in NOTEBOOK_KNOBS and k != "data_root"}
    return {
        "run_name": run.name, "profile": plan.profile, "data_root": run.config.data_root,
        "output_dir": str(sweep_dir.resolve()), **knobs, "overrides": overrides,
        "existing": existing, "gifs": plan.gifs, "progress": True,
    }


def marker_matches(run_dir: Path, run: RunSpec) -> bool:
    """Whether run_dir holds a finished run (its marker: the whole notebook ran) of this run's
    config, by the run folder's rule (lab4.runs.rules.run_differences): a run finished before a config
    field existed counts when its settings are the same, and one finished in a checkout at another
    path when it names the same dataset inside its project."""
    try:
        marker = json.loads((run_dir / RUN_MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if not isinstance(marker, dict) or not isinstance(marker.get("config"), dict):
        return False
    return not run_differences(marker["config"], run.config, (marker.get("row") or {}).get("data_root"))


def visible_gpus() -> list[str]:
    """The GPU ids jobs can be given (respecting CUDA_VISIBLE_DEVICES); [] without CUDA."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no torch/CUDA means CPU
        count = 0
    if count == 0:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in env.split(",") if d.strip()] if env else [str(i) for i in range(count)]
    return ids[:count]


class _Printer:
    """Status lines above a progress bar over the runs."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        from tqdm import tqdm

        self.lock = threading.Lock()
        self.bar = tqdm(total=total, desc=desc, unit="run", disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr, leave=True)
        self.enabled = enabled
        self.active: list[str] = []

    def line(self, text: str) -> None:
        with self.lock:
            self.bar.write(text, file=sys.stdout)
            sys.stdout.flush()

    def started(self, name: str) -> None:
        with self.lock:
            self.active.append(name)
            self.bar.set_postfix_str("running " + ", ".join(self.active))

    def stopped(self, name: str) -> None:
        with self.lock:
            if name in self.active:
                self.active.remove(name)
            self.bar.set_postfix_str(("running " + ", ".join(self.active)) if self.active else "")

    def finished(self) -> None:
        with self.lock:
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


_EPOCH_LINE = re.compile(r"^epoch\s+\d+\s+loss")


def _execute(run: RunSpec, plan: Plan, sweep_dir: Path, notebook: Path, existing: str, env: dict[str, str],
             printer: _Printer, processes: dict[str, subprocess.Popen]) -> Outcome:
    run_dir = sweep_dir / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_MARKER).unlink(missing_ok=True)
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    job = {
        "input": str(notebook.resolve()), "output": str((run_dir / RUN_NOTEBOOK).resolve()),
        "parameters": notebook_parameters(run, plan, sweep_dir, existing), "cwd": str(run_dir.resolve()),
        "error_file": str((run_dir / ERROR_FILE).resolve()),
    }
    job_file = run_dir / "sweep_job.json"
    atomic_write_text(job_file, json.dumps(job, indent=2) + "\n")
    device = f"GPU {env['CUDA_VISIBLE_DEVICES']}" if env.get("CUDA_VISIBLE_DEVICES") else ""
    printer.started(run.name)
    printer.line(f"[{run.name}] started{' on ' + device if device else ''}: "
                 f"{display_path(run_dir / RUN_NOTEBOOK)} (log {display_path(run_dir / LOG_FILE)})")
    started = time.perf_counter()
    try:
        with open(run_dir / LOG_FILE, "w") as log:
            proc = start_worker([*WORKER_COMMAND, str(job_file.resolve())], env)
            processes[run.name] = proc
            assert proc.stdout is not None
            for line in proc.stdout:  # the notebook's output, as it comes
                log.write(line)
                log.flush()
                text = line.strip()
                if _EPOCH_LINE.match(text):
                    printer.line(f"[{run.name}] {text}")
            code = proc.wait()
    finally:
        processes.pop(run.name, None)
        printer.stopped(run.name)
    seconds = time.perf_counter() - started
    if code == 0:
        outcome = Outcome(run, "done", seconds, device=device)
        marker = {"run": run.name, "base": run.base, "seed": run.seed, "config": run.config.to_dict(),
                  "settings": run.settings, "seconds": seconds, "device": device,
                  "finished": _dt.datetime.now().isoformat(timespec="seconds"),
                  "row": summary_row(plan, outcome, sweep_dir)}
        job_file.unlink(missing_ok=True)
        atomic_write_text(run_dir / RUN_MARKER, json.dumps(marker, indent=2, default=str) + "\n")  # written last
        return outcome
    try:
        error = json.loads((run_dir / ERROR_FILE).read_text()).get("error", "")
    except (FileNotFoundError, json.JSONDecodeError):
        error = f"the notebook process exited with status {code}; see {display_path(run_dir / LOG_FILE)}"
    return Outcome(run, "failed", seconds, error=error, device=device)


def run_env(threads: int | None = None, gpu: str | None = None) -> dict[str, str]:
    """The environment a run's worker starts with: unbuffered output (its epoch lines come as they
    are printed), its GPU, and its CPU threads when the machine is shared."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


class Launcher(Protocol):
    """Runs a sweep's pending runs somewhere other than this machine's process pool."""

    name: str

    def where(self) -> str:
        """Where and how the runs go, for the sweep's first line."""
        ...

    def launch(self, todo: list[tuple[RunSpec, str]], plan: Plan, sweep_dir: Path, notebook: Path,
               printer: _Printer, force: bool) -> Iterator[Outcome]:
        """Runs each (run, existing) of todo through _execute; yields each outcome as it is known."""
        ...


def _first_start(sweep_dir: Path, name: str) -> str:
    """When this sweep first started (kept across re-runs that finish it)."""
    try:
        info = json.loads((sweep_dir / SWEEP_FILE).read_text())
        if info.get("name") == name and info.get("started"):
            return str(info["started"])
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    return _dt.datetime.now().isoformat(timespec="seconds")


def run_sweep(plan: Plan, sweep_dir: Path | None = None, jobs: int = 1, force: bool = False,
              notebook: Path | None = None, threads: int | None = None, progress: bool = True,
              only: list[str] | None = None, launcher: Launcher | None = None) -> tuple[list[Outcome], Path]:
    """Run every run of the plan that has not finished (here, `jobs` at a time, or through the
    launcher); write summary.csv. Returns the outcomes (in plan order) and the summary's path."""
    sweep_dir = Path(sweep_dir or resolve(Path("runs") / plan.name))
    notebook = Path(notebook or resolve(NOTEBOOK))
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: the training notebook is missing (expected notebooks/train.ipynb "
                                "in the project folder; pass --notebook)")
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: expected a positive number")
    runs = plan.runs
    if only:
        unknown = sorted(set(only) - {r.name for r in runs} - {r.base for r in runs})
        if unknown:
            raise ValueError(f"--only {', '.join(unknown)}: not in {plan.path} "
                             f"(its runs: {', '.join(r.name for r in runs)})")
        runs = [r for r in runs if r.name in only or r.base in only]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(sweep_dir)  # held until this function returns
    gpus = visible_gpus()
    info = {
        "name": plan.name, "plan": display_path(plan.path), "plan_contents": plan.raw, "description": plan.description,
        "profile": plan.profile, "data_root": display_path(plan.runs[0].config.data_root),
        "seeds": sorted({r.seed for r in plan.runs}), "varied": plan.varied,
        "runs": [r.name for r in plan.runs], "started": _first_start(sweep_dir, plan.name),
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
        "launcher": launcher.name if launcher else "local", "jobs": jobs, "gpus": gpus, "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(), "command": " ".join(sys.argv),
    }
    atomic_write_text(sweep_dir / SWEEP_FILE, json.dumps(info, indent=2, default=str) + "\n")

    printer = _Printer(len(runs), f"sweep {plan.name}", enabled=progress)
    where = f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)"
    where = launcher.where() if launcher else f"{jobs} at a time on {where}"
    printer.line(f"sweep {plan.name}: {len(runs)} runs of {display_path(plan.path)} (profile {plan.profile}, "
                 f"data {info['data_root']}) into {display_path(sweep_dir)}, {where}")
    if gpus and jobs > len(gpus) and not launcher:
        printer.line(f"note: {jobs} jobs share {len(gpus)} GPU(s)")
    outcomes: dict[str, Outcome] = {}
    todo: list[tuple[RunSpec, str]] = []
    for run in runs:
        run_dir = sweep_dir / run.name
        if not force and marker_matches(run_dir, run):
            seconds = json.loads((run_dir / RUN_MARKER).read_text()).get("seconds", 0.0)
            outcomes[run.name] = Outcome(run, "skipped", seconds)
            printer.line(f"[{run.name}] skipped: finished earlier ({display_path(run_dir / RUN_MARKER)})")
            printer.finished()
            continue
        state = folder_state(run_dir, run.config)
        existing = "restart" if force or state.kind == "changed" else "resume"
        if state.kind == "changed" and not force:
            printer.line(f"[{run.name}] the plan changed this run's settings ({state.detail}): starting it over")
        todo.append((run, existing))

    gpu_pool: list[str] = list(gpus)
    pool_lock = threading.Lock()
    processes: dict[str, subprocess.Popen] = {}
    cpu_threads = threads or (max(1, (os.cpu_count() or 1) // jobs) if not gpus and jobs > 1 else None)

    def job(run: RunSpec, existing: str) -> Outcome:
        gpu = None
        if len(gpus) > 1:
            with pool_lock:
                gpu = gpu_pool.pop(0) if gpu_pool else None
        try:
            return _execute(run, plan, sweep_dir, notebook, existing, run_env(cpu_threads, gpu), printer, processes)
        finally:
            if gpu is not None:
                with pool_lock:
                    gpu_pool.append(gpu)

    def pooled() -> Iterator[Outcome]:
        futures = {pool.submit(job, run, existing): run for run, existing in todo}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
                yield Outcome(futures[future], "failed", error=f"{type(exc).__name__}: {exc}")

    pool = ThreadPoolExecutor(max_workers=jobs)
    restore_sigterm = _sigterm_interrupts()
    try:
        results = launcher.launch(todo, plan, sweep_dir, notebook, printer, force) if launcher else pooled()
        for outcome in results:
            outcomes[outcome.run.name] = outcome
            _report(outcome, sweep_dir, printer)
    except BaseException:  # Ctrl-C, SIGTERM (see _sigterm_interrupts), or a bug: no worker outlives the sweep
        pool.shutdown(wait=False, cancel_futures=True)
        stop_workers(list(processes.values()))
        printer.close()
        raise
    finally:
        restore_sigterm()
    pool.shutdown()
    printer.close()
    for run in plan.runs:  # runs left out by --only keep their row
        if run.name not in outcomes:
            finished = marker_matches(sweep_dir / run.name, run)
            seconds = json.loads((sweep_dir / run.name / RUN_MARKER).read_text()).get("seconds", 0.0) if finished else 0.0
            outcomes[run.name] = Outcome(run, "skipped" if finished else "not run", seconds)
    summary = write_summary(plan, sweep_dir, [outcomes[r.name] for r in plan.runs])
    lock.close()
    return [outcomes[r.name] for r in runs], summary


def _report(outcome: Outcome, sweep_dir: Path, printer: _Printer) -> None:
    """A finished run's line: its headline numbers, or its error with where to look."""
    name = outcome.run.name
    if outcome.status == "done":
        printer.line(f"[{name}] done in {outcome.seconds:.0f}s: {headline(run_summary(sweep_dir / name))}")
    else:
        printer.line(f"[{name}] FAILED after {outcome.seconds:.0f}s: {outcome.error}\n"
                     f"    executed notebook: {display_path(sweep_dir / name / RUN_NOTEBOOK)}\n"
                     f"    log: {display_path(sweep_dir / name / LOG_FILE)}")
    printer.finished()


def _sigterm_interrupts() -> Any:
    """SIGTERM stops the sweep as Ctrl-C does (its workers stopped with it); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
