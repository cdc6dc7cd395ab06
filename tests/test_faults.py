"""Faults a run folder must survive: a kill at any write, two trainers, a moved data folder, a
full disk, a read-only folder, a first-epoch divergence, the umask, a killed sweep.

Each test states what the user is promised: no wrong model is ever loaded, a resumed run ends
exactly as an uninterrupted one, and an error is one line naming the file and what to do."""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import lab4.step as step_module
import lab4.train as train_module
from lab4 import cli
from lab4.config import make_config
from lab4.io import FAULT_ENV, FAULT_EXIT, FolderLock, atomic_write_text
from lab4.predict import load_trained
from lab4.runs import RunPaths
from lab4.runs.checkpoint import best_epoch_of, checkpoint_for, committed, finished, load_checkpoint, save_checkpoint
from lab4.train import train
from tests.conftest import stopped_at_epoch_2, write_dataset

ROOT = Path(__file__).resolve().parent.parent
TIMING = {"seconds", "train_frames_per_s"}
SETTINGS = {"val_vi_len": 6, "num_epoch": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault_data") / "data"
    write_dataset(root, n_train=8, n_val=6, n_test=2, test_len=6, with_gt=True)  # one batch per epoch
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smoke(data_root: Path, **overrides: Any):
    return make_config("smoke", {"data_root": str(data_root), **SETTINGS, **overrides})


def cli_args(data_root: Path, run: Path) -> list[str]:
    return ["train", "--profile", "smoke", "--data", str(data_root), "--run-dir", str(run), "--quiet",
            *[f"--set={name}={value}" for name, value in SETTINGS.items()]]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def outcome(run: Path) -> dict[str, Any]:
    """What a finished run folder holds, without wall-clock times."""
    paths = RunPaths(run)
    done = json.loads(paths.done.read_text())
    done["final"] = {k: v for k, v in done["final"].items() if k not in TIMING}
    return {"logs": [rows(p) for p in (paths.epoch_log, paths.iter_log, paths.val_log)], "done": done,
            "best_epoch": load_checkpoint(paths.best)["epoch"],
            "checkpoints": sorted(p.name for p in paths.checkpoints.iterdir())}


def assert_same_run(run: Path, reference: Path) -> None:
    assert outcome(run) == outcome(reference)
    for name in ("last.pt", "best.pt"):
        assert same_weights(weights(run / "checkpoints" / name), weights(reference / "checkpoints" / name)), name
    assert not list(run.rglob("*.tmp")), "temporary files left behind"


def in_child(job: Callable[[], object], fault_at: int | None = None) -> int:
    """Run `job` in a forked copy of this process (so no second start-up of torch); with fault_at,
    the copy dies at that atomic write as under `kill -9`. Returns its exit status."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            torch.set_num_threads(1)
            if fault_at is not None:
                os.environ[FAULT_ENV] = str(fault_at)
            job()
            code = 0
        except BaseException:  # noqa: BLE001 - reported, then the exit status says it
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def files(run: Path) -> dict[str, str]:
    """Every file of a run folder (but its lock, the live iteration log and temporary files) by
    content hash."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name not in (".lock", "iter_log.csv") and not p.name.endswith(".tmp")}


@pytest.fixture(scope="module")
def whole(data_root, tmp_path_factory) -> Path:
    """An uninterrupted run: what every interrupted one must end as."""
    run = tmp_path_factory.mktemp("whole") / "run"
    # Module fixtures are made before the autouse one-thread fixture runs, and a thread count
    # changes the order of floating-point sums: set it here too, as every run it is compared with has.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(smoke(data_root), run, progress=False)
    finally:
        torch.set_num_threads(threads)
    return run


def test_a_kill_at_any_write_never_loads_a_wrong_model_and_resume_ends_as_if_uninterrupted(data_root, whole,
                                                                                           tmp_path):
    cfg = smoke(data_root)
    epoch_weights = {n: weights(RunPaths(whole).periodic(n)) for n in (1, 2)}  # smoke saves every epoch
    cut_points, uncommitted = 0, []
    while True:
        run = tmp_path / f"cut{cut_points + 1}"
        code = in_child(lambda: train(cfg, run, progress=False), fault_at=cut_points + 1)
        if code == 0:
            break  # fewer writes than that: every write point has been cut
        assert code == FAULT_EXIT, f"the run failed at write {cut_points + 1} rather than being killed"
        cut_points += 1
        paths = RunPaths(run)
        state = committed(paths)
        # Whatever the cut left, a reader gets the model it asks for or a refusal, never another.
        if state is None:  # cut before the first commit: nothing to load, nothing to resume
            with pytest.raises(FileNotFoundError):
                load_trained(run, "best")
            with pytest.raises(FileNotFoundError, match="start it over with --force"):
                train(cfg, run, resume=True, progress=False)
            uncommitted.append(run)
            continue
        wanted = best_epoch_of(state) or state["epoch"]
        model, _, epoch = load_trained(run, "best")  # what predict loads by default
        assert epoch == wanted and same_weights(model.state_dict(), epoch_weights[wanted]), cut_points
        last = load_checkpoint(checkpoint_for(paths, "last"))
        assert same_weights(last["model"], epoch_weights[state["epoch"]])
        assert finished(paths) == (state["epoch"] == cfg.num_epoch and paths.done.is_file())
        for n in (1, 2):  # a periodic checkpoint is its epoch, or not there, or refused
            with contextlib.suppress(ValueError, FileNotFoundError):
                assert same_weights(weights(checkpoint_for(paths, str(n))), epoch_weights[n])
        # And the run goes on to exactly where an uninterrupted one ends.
        train(cfg, run, resume=True, progress=False)
        assert_same_run(run, whole)
    # A run cut before its first commit starts over (one is enough: they differ only in what
    # the restart clears).
    train(cfg, uncommitted[-1], force=True, progress=False)
    assert_same_run(uncommitted[-1], whole)
    # Every write of a two-epoch run was cut: config, three logs, then per epoch the rollout,
    # last.pt, two logs, best.pt (when it improved) and epoch_NNN.pt, and done.json.
    assert cut_points >= 13


def test_two_trainers_never_share_a_run_folder(data_root, tmp_path):
    run = tmp_path / "run"
    stepping, go = tmp_path / "stepping", tmp_path / "go"
    real_step = train_module.train_step

    def waiting_step(*args, **kwargs):
        stepping.touch()
        while not go.exists():  # the first trainer is mid-epoch while the second one tries
            time.sleep(0.02)
        return real_step(*args, **kwargs)

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            train_module.train_step = waiting_step
            train(smoke(data_root), run, progress=False)
            code = 0
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 60
        while not stepping.exists():
            assert time.monotonic() < deadline, "the first trainer never started"
            time.sleep(0.02)
        assert str(pid) in (run / ".lock").read_text()
        before = files(run)
        for extra in (["--force"], ["--resume"], ["--force", "--set", "lr=0.5"]):
            code, _, err = run_cli(*cli_args(data_root, run), *extra)
            line = one_line_error(err)
            assert code == 2 and f"pid {pid}" in line and "in use" in line, line
        assert files(run) == before  # the refused trainers wrote nothing
    finally:
        go.touch()
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert finished(RunPaths(run)) and load_checkpoint(run / "checkpoints/last.pt")["config"]["lr"] == 1e-3

    # A holder that died (kill -9) leaves its record but not its lock: the next trainer takes it over.
    holder = os.fork()
    if holder == 0:
        FolderLock.acquire(run / ".lock", "lab4 train")
        os._exit(0)  # no release: as if killed
    os.waitpid(holder, 0)
    code, _, err = run_cli(*cli_args(data_root, run), "--resume")
    assert code == 0 and f"pid {holder}" in err and "taking the lock over" in err, err


def test_resume_uses_the_runs_own_config_from_any_folder_and_checks_new_data(data_root, whole, tmp_path,
                                                                            monkeypatch):
    import shutil

    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(data_root, start / "data")
    monkeypatch.chdir(start)
    # Started with a relative data path; stopped after epoch 1.
    argv = [*cli_args(Path("data"), Path("run"))[:-2], "--set=val_vi_len=6", "--set=num_epoch=2"]
    stopped_at_epoch_2(monkeypatch, lambda: run_cli(*argv))
    run = start / "run"
    assert json.loads((run / "config.json").read_text())["data_root"] == str(start / "data")

    monkeypatch.chdir(elsewhere)
    (start / "data").rename(start / "moved")
    other = write_dataset(tmp_path / "other", n_train=12, n_val=6, n_test=2, test_len=6).root
    for extra, expected in (([], "data root not found"),                         # the run's data is gone
                            (["--data", str(tmp_path / "nowhere")], "nowhere"),  # --data is never ignored
                            (["--data", str(other)], "train_frames 8 vs 12"),   # other counts: refused
                            (["--set", "lr=0.5"], "lr: saved 0.001, now 0.5"),   # --set on the run's config
                            (["--profile", "quick"], "--profile quick")):        # another profile: refused
        code, _, err = run_cli("train", "--resume", "--run-dir", str(run), "--quiet", *extra)
        assert code == 2 and expected in one_line_error(err), (extra, err)
    assert committed(RunPaths(run))["epoch"] == 1

    code, out, err = run_cli("train", "--resume", "--run-dir", str(run), "--quiet", "--data", str(start / "moved"),
                             "--set", "num_epoch=2")  # a --set that changes nothing is accepted
    assert code == 0, err
    assert "same layout and frame counts" in out
    assert json.loads((run / "config.json").read_text())["data_root"] == str(start / "moved")
    assert_same_run(run, whole)


def test_a_full_disk_is_one_line_and_touches_nothing_saved(data_root, whole, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_save = torch.save
    seen: dict[str, Any] = {}

    def full_disk(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 2 and "last.pt" in str(getattr(f, "name", f)):
            seen["files"] = files(run)  # what was there before the failed write
            if hasattr(f, "write"):
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    code, _, err = run_cli(*cli_args(data_root, run))
    line = one_line_error(err)
    assert code == 2 and "last.pt" in line and "is full" in line and "free space" in line, line
    assert files(run) == seen["files"]  # epoch 1's checkpoints and logs as they were
    assert not list(run.rglob("*.tmp"))
    assert committed(RunPaths(run))["epoch"] == 1
    monkeypatch.setattr(torch, "save", real_save)  # space freed
    code, _, err = run_cli("train", "--resume", "--run-dir", str(run), "--quiet")
    assert code == 0, err
    assert_same_run(run, whole)


def test_a_read_only_folder_is_one_line_and_touches_nothing(data_root, tmp_path, monkeypatch):
    # Tests may run as root, whom chmod does not stop: the file system's refusal is imitated.
    run = tmp_path / "run"
    stopped_at_epoch_2(monkeypatch, lambda: run_cli(*cli_args(data_root, run)))
    before = files(run)
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).startswith(str(run)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    code, _, err = run_cli("train", "--resume", "--run-dir", str(run), "--quiet")
    line = one_line_error(err)
    assert code == 2 and "read-only" in line and str(run) in line, line
    code, _, err = run_cli("predict", str(run), "--no-gif")
    line = one_line_error(err)
    assert code == 2 and "read-only" in line and "predictions.npy" in line, line
    monkeypatch.setattr(os, "open", real_open)
    assert files(run) == before


def test_a_divergence_in_the_first_epoch_does_not_point_to_a_checkpoint(data_root, tmp_path, monkeypatch):
    real_loss = step_module.clip_loss

    def poisoned(*args, **kwargs):
        out = real_loss(*args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(step_module, "clip_loss", poisoned)
    code, _, err = run_cli(*cli_args(data_root, tmp_path / "run"), "--set=log_every=1")
    line = one_line_error(err)
    assert code == 2 and "no checkpoint was saved" in line and "last good" not in line, line
    assert not (tmp_path / "run/checkpoints/last.pt").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_written_files_follow_the_umask(tmp_path, umask):
    from lab4.submission import write_submission

    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}\n")
        save_checkpoint(tmp_path / "last.pt", {"epoch": 1})
        write_submission(torch.zeros(1, 2, 3, 32, 64).numpy(), tmp_path / "submission.csv")
        FolderLock.acquire(tmp_path / ".lock", "test").release()
    finally:
        os.umask(previous)
    for name in ("a.json", "last.pt", "submission.csv", ".lock"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


FAKE_WORKER = """
import os, subprocess, sys, time
from lab4.sweep import worker_guard
worker_guard()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # in the worker's group
job = sys.argv[1]
with open(os.path.join(os.path.dirname(job), "pids"), "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}")
time.sleep(120)
"""

SWEEP_DRIVER = """
import signal, sys
# A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored: restore
# what a terminal's Ctrl-C meets, whatever started this test.
signal.signal(signal.SIGINT, signal.default_int_handler)
from lab4 import cli
from lab4.sweep import runner
runner.WORKER_COMMAND = [sys.executable, sys.argv[1]]
runner.visible_gpus = lambda: []
sys.exit(cli.main(["sweep", sys.argv[2], "--out", sys.argv[3], "--quiet"]))
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the worker guard uses prctl")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["term", "int", "kill"])
def test_a_stopped_or_killed_sweep_takes_its_workers_with_it(tmp_path, sig):
    (tmp_path / "worker.py").write_text(FAKE_WORKER)
    (tmp_path / "driver.py").write_text(SWEEP_DRIVER)
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent(f"""
        profile: smoke
        data_root: {tmp_path / 'data'}
        runs: [{{name: a}}]
        """))
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "worker.py"), str(plan),
                               str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    pids_file = out / "a-s0" / "pids"
    deadline = time.monotonic() + 60
    while not (pids_file.is_file() and " " in pids_file.read_text()):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.05)
    worker, grandchild = map(int, pids_file.read_text().split())
    assert alive(worker) and alive(grandchild)
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=30)
    if sig != signal.SIGKILL:
        assert driver.returncode == 130 and "interrupted" in err, err  # stopped cleanly, as with Ctrl-C
    deadline = time.monotonic() + 15
    while alive(worker) or alive(grandchild):
        assert time.monotonic() < deadline, "the sweep's worker outlived it"
        time.sleep(0.05)
