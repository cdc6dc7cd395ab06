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
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab4.config import PROFILES, Config, from_dict, make_config
from lab4.experiment import NOTEBOOK_KNOBS, display_path, resolve, workspace_root
from lab4.io import atomic_write_text

# The files a sweep writes (lab4.results reads them).
SWEEP_FILE = "sweep.json"          # runs/<sweep>/: the plan and how it was run, written when the sweep starts
SUMMARY_FILE = "summary.csv"       # runs/<sweep>/: one row per run, written when the sweep ends
RUN_MARKER = "sweep_done.json"     # runs/<sweep>/<run>/: the run's notebook finished; written last, atomically
RUN_NOTEBOOK = "train.ipynb"       # runs/<sweep>/<run>/: the executed training notebook
PLANS_DIR = Path(__file__).parent / "plans"
NOTEBOOK = Path("notebooks") / "train.ipynb"
LOG_FILE = "notebook.log"
ERROR_FILE = "sweep_error.json"

PLAN_KEYS = {
    "name": "the sweep's name: its folder is runs/<name>/ (default: the file's name)",
    "description": "free text, shown on the report's title page",
    "profile": f"the profile every run starts from: one of {', '.join(PROFILES)}",
    "data_root": "the dataset folder (default: the profile's)",
    "seeds": "a list of seeds every run is trained with (default [0])",
    "settings": "config fields every run shares",
    "gifs": "write GIFs of the test predictions (default true)",
    "runs": "the list of runs",
}
RUN_KEYS = {
    "name": "the run's name (letters, digits, _ . -)",
    "label": "a legend label for the figures",
    "groups": "which comparisons the run belongs to: kl (KL annealing) and/or tf (teacher forcing)",
    "settings": "config fields this run sets",
    "seeds": "this run's seeds (overrides the plan's)",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Settings always written to summary.csv (plus any other field a plan varies).
SUMMARY_SETTINGS = ["num_epoch", "kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "kl_anneal_step",
                    "tfr", "tfr_sde", "tfr_d_step", "tf_granularity"]


class PlanError(ValueError):
    """The plan file is not valid; the message names the file and the bad key."""


@dataclass
class RunSpec:
    name: str               # the folder name: <base>-s<seed>
    base: str               # the run's name in the plan
    seed: int
    label: str
    groups: list[str]
    settings: dict[str, Any]   # plan settings + run settings + seed (config overrides)
    config: Config             # the full config the notebook will build


@dataclass
class Plan:
    path: Path
    name: str
    description: str
    profile: str
    data_root: str | None
    gifs: bool
    runs: list[RunSpec] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def varied(self) -> list[str]:
        """Config fields whose value differs between runs (besides the seed)."""
        keys = sorted({k for r in self.runs for k in r.settings} - {"seed", "data_root"})
        return [k for k in keys if len({json.dumps(getattr(r.config, k)) for r in self.runs}) > 1]


# ---------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------


def find_plan(plan: str | os.PathLike) -> Path:
    """A plan file by path, or by name from lab4/plans/ (ablations -> lab4/plans/ablations.yaml)."""
    path = Path(plan)
    if path.is_file():
        return path
    for candidate in (PLANS_DIR / path.name, PLANS_DIR / f"{path.name}.yaml", PLANS_DIR / f"{path.name}.yml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in PLANS_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"plan {plan}: no such file, and no plan of that name in {PLANS_DIR} "
                            f"(shipped plans: {shipped})")


def _check_keys(where: str, got: dict[str, Any], allowed: dict[str, str]) -> None:
    for key in got:
        if key not in allowed:
            known = "; ".join(f"{k}: {v}" for k, v in allowed.items())
            raise PlanError(f"{where}: unknown key {key!r}. Allowed keys: {known}")


def _seeds(where: str, value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise PlanError(f"{where}: expected a list of non-negative integer seeds, got {value!r}")
    if len(set(values)) != len(values):
        raise PlanError(f"{where}: seeds repeat: {value!r}")
    return values


def _settings(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PlanError(f"{where}: expected a mapping of config fields to values, got {type(value).__name__}")
    known = set(Config().to_dict())
    for key in value:
        if key not in known:
            close = [k for k in sorted(known) if k.lower().startswith(str(key).lower()[:3])]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PlanError(f"{where}: {key!r} is not a config field{hint}; `python -m lab4 config` lists them")
    return dict(value)


def load_plan(plan: str | os.PathLike, profile: str | None = None, seeds: list[int] | None = None,
              data_root: str | None = None) -> Plan:
    """Read and check a plan; every run's config is built here, so a bad key or value is
    reported (naming the file, the run and the key) before anything runs."""
    import yaml

    path = find_plan(plan)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: expected a mapping with keys {', '.join(PLAN_KEYS)}")
    _check_keys(str(path), raw, PLAN_KEYS)
    name = str(raw.get("name") or path.stem)
    if not NAME.match(name):
        raise PlanError(f"{path}: name {name!r}: use letters, digits, _ . - (it names the sweep's folder)")
    chosen_profile = profile or raw.get("profile", "quick")
    if chosen_profile not in PROFILES:
        raise PlanError(f"{path}: profile {chosen_profile!r}: expected one of {', '.join(PROFILES)}")
    shared = _settings(f"{path}: settings", raw.get("settings"))
    plan_seeds = seeds or _seeds(f"{path}: seeds", raw.get("seeds", [0]))
    root = raw.get("data_root")
    gifs = raw.get("gifs", True)
    if not isinstance(gifs, bool):
        raise PlanError(f"{path}: gifs: expected true or false, got {gifs!r}")
    runs_raw = raw.get("runs")
    if not isinstance(runs_raw, list) or not runs_raw:
        raise PlanError(f"{path}: runs: expected a non-empty list of runs, each a mapping with a name")
    result = Plan(path=path, name=name, description=str(raw.get("description", "")).strip(),
                  profile=chosen_profile, data_root=data_root or root, gifs=gifs, raw=raw)
    seen: set[str] = set()
    for i, entry in enumerate(runs_raw):
        where = f"{path}: runs[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise PlanError(f"{where}: expected a mapping with at least a name, got {entry!r}")
        _check_keys(where, entry, RUN_KEYS)
        base = str(entry["name"])
        where = f"{path}: run {base!r}"
        if not NAME.match(base):
            raise PlanError(f"{where}: name: use letters, digits, _ . - (it names the run's folder)")
        if base in seen:
            raise PlanError(f"{where}: the name appears twice")
        seen.add(base)
        groups = entry.get("groups", [])
        groups = [groups] if isinstance(groups, str) else groups
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise PlanError(f"{where}: groups: expected a list of names such as [kl, tf], got {groups!r}")
        own = _settings(f"{where}: settings", entry.get("settings"))
        run_seeds = seeds or (_seeds(f"{where}: seeds", entry["seeds"]) if "seeds" in entry else plan_seeds)
        for seed in run_seeds:
            settings = {**shared, **own, "seed": seed}
            # data_root: --data, else the run's or the plan's settings, else the plan's data_root, else the profile's
            overrides = {**({"data_root": root} if root else {}), **settings}
            if data_root:
                overrides["data_root"] = data_root
            try:
                cfg = make_config(chosen_profile, overrides)
            except (ValueError, TypeError) as exc:
                raise PlanError(f"{where}: {exc}") from None
            if "tf" in groups and not cfg.teacher_forcing_applies:
                raise PlanError(f"{where}: a teacher-forcing comparison (group tf) with reference='first' (profile "
                                f"{chosen_profile!r}): every step is conditioned on the first frame, so teacher "
                                "forcing changes nothing; use a profile on the template's chain (quick-chain, lab)")
            cfg.data_root = str(resolve(cfg.data_root))
            result.runs.append(RunSpec(name=f"{base}-s{seed}", base=base, seed=seed,
                                       label=str(entry.get("label", base)), groups=groups,
                                       settings=settings, config=cfg))
    return result


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------


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


def config_as_today(saved: Any) -> dict[str, Any] | None:
    """A config saved as JSON, read through today's Config: fields added since it was saved
    take their defaults. None when today's Config cannot read it (an unknown field, a bad value)."""
    if not isinstance(saved, dict):
        return None
    try:
        return from_dict(saved).to_dict()
    except (ValueError, TypeError):
        return None


def marker_matches(run_dir: Path, run: RunSpec) -> bool:
    """Whether run_dir holds a finished run (its marker) of exactly this config.

    The marker's config is normalised first, so a run finished before a config field (with a
    default) existed still counts as done when its settings are the same; comparing the raw
    JSON would retrain it for a field it never had. Likewise a run finished in a checkout at
    another path, on the dataset of the same path inside the project.
    """
    try:
        marker = json.loads((run_dir / RUN_MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if not isinstance(marker, dict):
        return False
    saved = config_as_today(marker.get("config"))
    if saved is None:
        return False
    now = run.config.to_dict()
    # The config holds data_root made absolute; a run finished in a checkout at another path (a
    # clone of a repository with committed results) named the same dataset inside its project.
    given = (marker.get("row") or {}).get("data_root")
    if saved["data_root"] != now["data_root"] and isinstance(given, str) and not Path(given).is_absolute() \
            and resolve(given) == Path(now["data_root"]):
        saved["data_root"] = now["data_root"]
    return saved == now


def saved_config_differs(run_dir: Path, run: RunSpec) -> bool:
    try:
        return Config.load(run_dir / "config.json").to_dict() != run.config.to_dict()
    except (FileNotFoundError, ValueError, TypeError):
        return False


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


@dataclass
class Outcome:
    run: RunSpec
    status: str             # done, skipped, failed
    seconds: float = 0.0
    error: str = ""
    device: str = ""


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
    device = f"GPU {env['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in env else ""
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


# How the sweep starts a worker; the fault tests put a stand-in here.
WORKER_COMMAND = [sys.executable, "-m", "lab4.sweep", "--worker"]
PARENT_ENV = "LAB4_SWEEP_PID"
STOP_GRACE_S = 10.0


def start_worker(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A worker in a process group of its own, so that stopping it (stop_workers) reaches what it
    started too; it also stops itself if the sweep dies (worker_guard)."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**env, PARENT_ENV: str(os.getpid())}, cwd=str(workspace_root()), bufsize=1,
                            start_new_session=os.name == "posix")


def stop_workers(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each worker's process group, then SIGKILL to what is left after STOP_GRACE_S."""
    import signal

    def signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            if os.name == "posix":
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    for proc in processes:
        signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
            proc.wait()


def worker_guard() -> None:
    """In a worker: end with the sweep, whichever way the sweep ends.

    SIGTERM (sent by stop_workers, or by the system when the sweep dies) stops the worker's whole
    process group and the worker, without writing an error file: the sweep was stopped, the run
    did not fail. The notebook kernel, in a session of its own, ends when it sees its parent gone."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            os.killpg(os.getpgrp(), signal.SIGTERM)
        except OSError:
            pass
        os._exit(128 + signum)

    if os.name != "posix":
        return
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        stop(signal.SIGTERM, None)  # the sweep died before the guard was set


def _lock(sweep_dir: Path) -> Any:
    """An exclusive lock on the sweep folder, so two sweeps never write the same runs.
    Released when the returned file is closed or the process ends."""
    handle = open(sweep_dir / ".sweep.lock", "w")
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FileExistsError(f"{sweep_dir}: another sweep is running in this folder; wait for it, or pass "
                              "--out to use another folder") from None
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


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
              only: list[str] | None = None) -> tuple[list[Outcome], Path]:
    """Run every run of the plan that has not finished; write summary.csv. Returns the
    outcomes (in plan order) and the summary's path."""
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
    lock = _lock(sweep_dir)  # held until this function returns
    gpus = visible_gpus()
    info = {
        "name": plan.name, "plan": display_path(plan.path), "plan_contents": plan.raw, "description": plan.description,
        "profile": plan.profile, "data_root": display_path(plan.runs[0].config.data_root),
        "seeds": sorted({r.seed for r in plan.runs}), "varied": plan.varied,
        "runs": [r.name for r in plan.runs], "started": _first_start(sweep_dir, plan.name),
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
        "jobs": jobs, "gpus": gpus, "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "command": " ".join(sys.argv),
    }
    atomic_write_text(sweep_dir / SWEEP_FILE, json.dumps(info, indent=2, default=str) + "\n")

    printer = _Printer(len(runs), f"sweep {plan.name}", enabled=progress)
    where = f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)"
    printer.line(f"sweep {plan.name}: {len(runs)} runs of {display_path(plan.path)} (profile {plan.profile}, "
                 f"data {info['data_root']}) into {display_path(sweep_dir)}, {jobs} at a time on {where}")
    if gpus and jobs > len(gpus):
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
        existing = "restart" if force or saved_config_differs(run_dir, run) else "resume"
        if existing == "restart" and (run_dir / "config.json").is_file() and not force:
            printer.line(f"[{run.name}] the plan changed this run's settings: starting it over")
        todo.append((run, existing))

    gpu_pool: list[str] = list(gpus)
    pool_lock = threading.Lock()
    processes: dict[str, subprocess.Popen] = {}
    cpu_threads = threads or (max(1, (os.cpu_count() or 1) // jobs) if not gpus and jobs > 1 else None)

    def job(run: RunSpec, existing: str) -> Outcome:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        gpu = None
        if len(gpus) > 1:
            with pool_lock:
                gpu = gpu_pool.pop(0) if gpu_pool else None
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
        if cpu_threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = str(cpu_threads)
        try:
            return _execute(run, plan, sweep_dir, notebook, existing, env, printer, processes)
        finally:
            if gpu is not None:
                with pool_lock:
                    gpu_pool.append(gpu)

    pool = ThreadPoolExecutor(max_workers=jobs)
    restore_sigterm = _sigterm_interrupts()
    try:
        futures = {pool.submit(job, run, existing): run for run, existing in todo}
        for future in as_completed(futures):
            run = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the others
                outcome = Outcome(run, "failed", error=f"{type(exc).__name__}: {exc}")
            outcomes[run.name] = outcome
            if outcome.status == "done":
                row = _run_summary(sweep_dir / run.name)
                printer.line(f"[{run.name}] done in {outcome.seconds:.0f}s: {_headline(row)}")
            else:
                printer.line(f"[{run.name}] FAILED after {outcome.seconds:.0f}s: {outcome.error}\n"
                             f"    executed notebook: {display_path(sweep_dir / run.name / RUN_NOTEBOOK)}\n"
                             f"    log: {display_path(sweep_dir / run.name / LOG_FILE)}")
            printer.finished()
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


def _sigterm_interrupts() -> Any:
    """SIGTERM stops the sweep as Ctrl-C does (its workers stopped with it); returns the undo."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _run_summary(run_dir: Path) -> dict[str, Any]:
    from lab4.results import run_summary

    return run_summary(run_dir)


def _headline(row: dict[str, Any]) -> str:
    def db(key: str) -> str:
        value = row.get(key)
        return "n/a" if value is None else f"{value:.2f} dB"

    text = (f"val PSNR {db('final_val_psnr')} (best {db('best_val_psnr')}; repeat-first-frame baseline "
            f"{db('baseline_psnr')}; mean over {row.get('val_frames', '?')} predicted val frames)")
    if row.get("val_ssim_mean") is not None and row["val_ssim_mean"] == row["val_ssim_mean"]:  # not NaN
        text += f", val SSIM {row['val_ssim_mean']:.3f} (baseline {row.get('baseline_ssim_mean', float('nan')):.3f})"
    if row.get("test_psnr") is not None:
        text += f", test {db('test_psnr')} (baseline {db('test_baseline_psnr')})"
        if row.get("test_ssim") is not None and row["test_ssim"] == row["test_ssim"]:
            text += f", test SSIM {row['test_ssim']:.3f} (baseline {row.get('test_baseline_ssim', float('nan')):.3f})"
    return text


def summary_row(plan: Plan, outcome: Outcome, sweep_dir: Path) -> dict[str, Any]:
    """One run's row of summary.csv: settings, val PSNR (final, best), baseline, test score, times."""
    from lab4.experiment import describe_ablation

    run = outcome.run
    run_dir = sweep_dir / run.name
    row: dict[str, Any] = {
        "sweep": plan.name, "run": run.name, "base": run.base, "label": run.label, "seed": run.seed,
        "groups": " ".join(run.groups), "status": outcome.status, "profile": plan.profile,
        "data_root": display_path(run.config.data_root),
    }
    settings_cols = SUMMARY_SETTINGS + [k for k in plan.varied if k not in SUMMARY_SETTINGS]
    row.update({k: _cell(getattr(run.config, k)) for k in settings_cols})
    row["settings"] = describe_ablation(run.config)
    if outcome.status in ("done", "skipped"):
        row.update(_run_summary(run_dir))
    row["run_seconds"] = round(outcome.seconds, 1)
    row["device"] = outcome.device
    row["notebook"] = display_path(run_dir / RUN_NOTEBOOK)
    row["error"] = outcome.error
    return row


def write_summary(plan: Plan, sweep_dir: Path, outcomes: list[Outcome]) -> Path:
    """runs/<sweep>/summary.csv: one row per run of this invocation (see summary_row)."""
    import pandas as pd

    rows = [summary_row(plan, outcome, sweep_dir) for outcome in outcomes]
    path = sweep_dir / SUMMARY_FILE
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def _cell(value: Any) -> Any:
    return " ".join(map(str, value)) if isinstance(value, list) else value


# ---------------------------------------------------------------------------------------
# The worker: one papermill execution in its own process (and so its own environment)
# ---------------------------------------------------------------------------------------


def worker_main(job_file: str) -> int:
    import papermill as pm

    worker_guard()
    job = json.loads(Path(job_file).read_text())
    error_file = Path(job["error_file"])
    try:
        pm.execute_notebook(job["input"], job["output"], parameters=job["parameters"], kernel_name="python3",
                            progress_bar=False, log_output=False, stdout_file=sys.stdout, stderr_file=sys.stderr,
                            cwd=job["cwd"])
    except pm.PapermillExecutionError as exc:
        message = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
        atomic_write_text(error_file, json.dumps({"error": message, "ename": exc.ename, "evalue": exc.evalue,
                                                  "cell": exc.exec_count}, indent=2) + "\n")
        print(f"\nnotebook failed: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the sweep, which goes on
        message = f"{type(exc).__name__}: {exc}"
        atomic_write_text(error_file, json.dumps({"error": message}, indent=2) + "\n")
        print(f"\nnotebook could not run: {message}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    plan = load_plan(args.plan, profile=args.profile, seeds=seeds, data_root=args.data)
    if args.list:
        print(f"{plan.path}: sweep {plan.name}, profile {plan.profile}, {len(plan.runs)} runs")
        from lab4.experiment import describe_config

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
    p = sub.add_parser("sweep", help="run an ablation plan: the training notebook once per run (papermill)",
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

    # `report` is registered here too, so that the CLI starts without loading matplotlib.
    p = sub.add_parser("report", help="figures and figures/report.pdf of a sweep (runs the analysis notebook)")
    p.add_argument("sweep", nargs="?", help="the sweep folder (default: the latest under runs/)")
    p.add_argument("--figures", default="figures", help="where the figures and report.pdf go (default figures/)")
    p.add_argument("--no-readme", dest="readme", action="store_false",
                   help="do not copy fig3_psnr_per_frame.png to readme_psnr_per_frame.png for the README")
    p.add_argument("--quiet", action="store_true", help="no progress bar over the notebook's cells")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from lab4.report import cmd_report

    return cmd_report(args)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    sys.exit("usage: python -m lab4 sweep PLAN (this module's own entry point is the sweep's worker)")
