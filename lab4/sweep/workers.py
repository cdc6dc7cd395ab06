"""The sweep's workers: each run's notebook executes in a process of its own (`python -m
lab4.sweep --worker JOB`) and process group of its own, which ends with the sweep whichever way
the sweep ends; and the lock that keeps two sweeps out of one folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab4.io import atomic_write_text
from lab4.workspace import workspace_root

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


def lock_folder(sweep_dir: Path) -> Any:
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
