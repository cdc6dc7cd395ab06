"""`sweep --launcher slurm`: the job array through submitit, end to end with real smoke runs under
submitit's local executor, and the Slurm submission itself against stand-in sbatch/srun/sacct
commands (no cluster here): the options in the sbatch file, one array, failed jobs reported, and a
second invocation that waits for a live job instead of submitting its run twice."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from lab4 import cli
from lab4.sweep import RUN_MARKER
from lab4.sweep.slurm import JOBS_FILE, LOG_DIR, SweepJob, parse_time

submitit = pytest.importorskip("submitit", reason="the cluster extra (submitit) is not installed")

RUNS = ["kl_cyclical-s0", "tf_zero-s0"]
SMOKE = ["sweep", "smoke", "--only", "kl_cyclical,tf_zero", "--quiet"]


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue() + err.getvalue()


def test_the_job_array_runs_real_smoke_runs_under_submitits_local_executor(tiny_data, tmp_path):
    folder = tmp_path / "smoke"
    argv = [*SMOKE, "--data", str(tiny_data), "--out", str(folder), "--launcher", "submitit-local", "--threads", "1"]
    code, output = run_cli(*argv)
    assert code == 0, output
    assert "as jobs of submitit's local executor" in output and "submitted 2 run(s)" in output
    summary = pd.read_csv(folder / "summary.csv").set_index("run")
    assert summary.loc[RUNS, "status"].tolist() == ["done", "done"]
    assert set(summary.drop(index=RUNS)["status"]) == {"not run"}  # the plan's other runs keep a row
    assert summary.loc[RUNS, ["final_val_psnr", "baseline_psnr", "test_psnr"]].notna().all().all()
    jobs = json.loads((folder / LOG_DIR / JOBS_FILE).read_text())
    assert set(jobs) == set(RUNS)
    for name in RUNS:
        assert json.loads((folder / name / RUN_MARKER).read_text())["run"] == name  # written by _execute in the job
        assert (folder / name / "checkpoints" / "best.pt").is_file()
        log = (folder / LOG_DIR / f"{jobs[name]['job_id']}_0_log.out").read_text()
        assert f"[{name}] started" in log and f"[{name}] epoch   2" in log  # the run's lines, in the job's log
        assert f"[{name}] done in" in output
    assert json.loads((folder / "sweep.json").read_text())["launcher"] == "submitit-local"

    # Again: every run finished, so nothing is submitted and summary.csv is rewritten from the markers.
    logs = sorted(p.name for p in (folder / LOG_DIR).iterdir())
    code, output = run_cli(*argv)
    assert code == 0, output
    assert "nothing to submit" in output and "0 ran, 2 skipped" in output
    assert sorted(p.name for p in (folder / LOG_DIR).iterdir()) == logs
    assert pd.read_csv(folder / "summary.csv").set_index("run").loc[RUNS, "status"].tolist() == ["skipped"] * 2


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """sbatch, srun and sacct stand-ins on PATH: sbatch keeps each file it is given (sbatch_N.sh) and
    answers job 4241+N (or fails with the text of a file `refuse`); sacct prints sacct.txt, then puts sacct.next (if any) in its place."""
    fake = tmp_path / "fake_slurm"
    fake.mkdir()
    scripts = {
        "sbatch": '[ -f "$FAKE/refuse" ] && { cat "$FAKE/refuse" >&2; exit 1; }\n'
                  'n=$(( $(cat "$FAKE/count" 2>/dev/null || echo 0) + 1 )); echo $n > "$FAKE/count"\n'
                  'cp "$1" "$FAKE/sbatch_$n.sh"; echo "Submitted batch job $((4241 + n))"\n',
        "srun": "exit 0\n",
        "sacct": 'cat "$FAKE/sacct.txt"; [ -f "$FAKE/sacct.next" ] && mv "$FAKE/sacct.next" "$FAKE/sacct.txt"; exit 0\n',
    }
    for name, body in scripts.items():
        path = fake / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE", str(fake))
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(submitit.SlurmJob, "_results_timeout_s", 0)  # no waiting for results that never come
    submitit.SlurmJob.watcher.clear()
    yield fake
    submitit.SlurmJob.watcher.clear()


def sacct(*rows: str) -> str:
    return "JobID|State|NodeList\n" + "".join(f"{row}|node1\n" for row in rows)


def test_slurm_options_go_into_one_job_array_and_a_rerun_waits_for_live_jobs(tiny_data, tmp_path, fake_slurm):
    folder = tmp_path / "smoke"
    argv = [*SMOKE, "--data", str(tiny_data), "--out", str(folder), "--launcher", "slurm",
            "--slurm-partition", "gpu", "--slurm-time", "1:30:00", "--slurm-mem", "16", "--slurm-parallel", "1",
            "--slurm", "account=proj"]
    # The jobs end without running (as a node failure would): each run is reported failed, with its log.
    (fake_slurm / "sacct.txt").write_text(sacct("4242_0|COMPLETED", "4242_1|FAILED"))
    code, output = run_cli(*argv)
    assert code == 1, output
    sbatch = (fake_slurm / "sbatch_1.sh").read_text()
    for line in ("--array=0-1%1", "--partition=gpu", "--time=90", "--gpus-per-node=1", "--cpus-per-task=4",
                 "--mem=16GB", "--account=proj", "--job-name=lab4-smoke",
                 f"--output={folder / LOG_DIR}/%A_%a_0_log.out"):
        assert f"#SBATCH {line}\n" in sbatch, line
    assert "submitted 2 run(s) (array 4242)" in output
    assert "as one Slurm job array (partition gpu, 1 GPU, 4 CPUs, 16 GB, 1:30:00 per job, 1 at a time" in output
    summary = pd.read_csv(folder / "summary.csv").set_index("run")
    assert summary.loc[RUNS, "status"].tolist() == ["failed", "failed"]
    assert "job 4242_0 ended without a result (state COMPLETED)" in summary.loc[RUNS[0], "error"]
    assert "job 4242_1 ended without a result (state FAILED)" in summary.loc[RUNS[1], "error"]
    jobs = json.loads((folder / LOG_DIR / JOBS_FILE).read_text())
    assert {name: jobs[name]["job_id"] for name in RUNS} == {RUNS[0]: "4242_0", RUNS[1]: "4242_1"}

    # Say the first job is still running (a requeue, say): --force would run its run twice, so it is refused.
    (fake_slurm / "sacct.txt").write_text(sacct("4242_0|RUNNING", "4242_1|FAILED"))
    submitit.SlurmJob.watcher.clear()  # a new invocation is a new process
    code, output = run_cli(*argv, "--force")
    assert code == 2 and "error: --force: the jobs of kl_cyclical-s0 are still queued or running (4242_0)" in output
    assert (fake_slurm / "count").read_text().strip() == "1"  # nothing submitted

    # Without --force, the sweep waits for the live job and submits only the other run; then it ends.
    (fake_slurm / "sacct.next").write_text(sacct("4242_0|COMPLETED", "4242_1|FAILED", "4243|CANCELLED by 0"))
    submitit.SlurmJob.watcher.clear()
    code, output = run_cli(*argv)
    assert code == 1, output
    assert "[kl_cyclical-s0] job 4242_0 is still queued or running: waiting for it" in output
    assert (fake_slurm / "count").read_text().strip() == "2"
    assert "--array" not in (fake_slurm / "sbatch_2.sh").read_text()  # one run: one job
    jobs = json.loads((folder / LOG_DIR / JOBS_FILE).read_text())
    assert {name: jobs[name]["job_id"] for name in RUNS} == {RUNS[0]: "4242_0", RUNS[1]: "4243"}
    error = pd.read_csv(folder / "summary.csv").set_index("run").loc[RUNS[1], "error"]
    assert "job 4243 ended without a result (state CANCELLED)" in error


def test_a_submission_sbatch_refuses_is_one_line_and_records_no_job(tiny_data, tmp_path, fake_slurm):
    (fake_slurm / "refuse").write_text("sbatch: error: invalid partition specified: gpux\n")
    folder = tmp_path / "smoke"
    code, output = run_cli(*SMOKE, "--data", str(tiny_data), "--out", str(folder), "--launcher", "slurm",
                           "--slurm-partition", "gpux")
    assert code == 2, output
    assert ("error: --launcher slurm: the submission failed: sbatch: error: invalid partition specified: gpux"
            in output)
    assert not (folder / LOG_DIR / JOBS_FILE).exists()


@pytest.mark.parametrize("extra, message", [
    (["--launcher", "slurm", "--jobs", "2"], "--jobs 2: the local pool's option"),
    (["--slurm-partition", "gpu"], "--slurm-partition: a Slurm option; it needs --launcher slurm"),
    (["--launcher", "slurm", "--slurm-time", "4h"], "--slurm-time '4h': expected minutes or"),
    (["--launcher", "slurm", "--slurm", "account"], "--slurm 'account': expected KEY=VALUE"),
    (["--launcher", "slurm", "--slurm", "partition=gpu"], "--slurm 'partition=gpu': partition is set by --slurm-partition"),
    (["--launcher", "slurm", "--slurm-cpus", "0"], "--slurm-cpus 0: expected a whole number of at least 1"),
    (["--launcher", "slurm"], "--launcher slurm: no `sbatch` on this machine's PATH"),
])
def test_bad_launcher_options_stop_in_one_line_before_anything_is_written(extra, message, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no_bin"))  # no sbatch here
    code, output = run_cli("sweep", "smoke", "--out", str(tmp_path / "runs"), "--quiet", *extra)
    assert code == 2 and output.startswith(f"error: {message}") and output.count("\n") == 1, output
    assert not (tmp_path / "runs").exists()


def test_without_submitit_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # import submitit now fails
    code, output = run_cli("sweep", "smoke", "--out", str(tmp_path / "runs"), "--launcher", "slurm")
    assert code == 2 and "needs submitit, the `cluster` extra" in output, output


def test_slurm_times_and_a_requeued_job_resumes_its_run(tmp_path):
    assert [parse_time(t) for t in ("90", "30:30", "1:30:00", "1-2", "2-00:00:00")] == [90, 31, 90, 1560, 2880]
    from lab4.sweep import load_plan

    run = load_plan("smoke").runs[0]
    job = SweepJob(load_plan("smoke"), tmp_path, tmp_path / "train.ipynb", threads=1)
    again = job.checkpoint(run, "restart")  # submitit calls this on a timeout or preemption
    assert again.function is job and again.args == (run, "resume")
