"""The sweep runner, the training and analysis notebooks and the report, end to end:
real papermill executions of the real notebooks on the tiny synthetic data, smoke profile."""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

from lab4 import cli
from lab4.report import FIGURE_NAMES, README_FIGURE, REPORT_FILE
from lab4.sweep import ERROR_FILE, LOG_FILE, RUN_MARKER, RUN_NOTEBOOK, PlanError, load_plan

ROOT = Path(__file__).resolve().parent.parent
GOOD_RUNS = ["kl_cyclical-s0", "tf_zero-s0"]


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue() + err.getvalue()


def write_plan(folder: Path, data: Path, text: str | None = None) -> Path:
    """A tiny plan: two runs that work and one whose data folder does not exist."""
    text = text or f"""
        name: tiny
        description: two smoke runs and a broken one
        profile: smoke
        data_root: {data}
        seeds: [0]
        settings: {{partial: 0.5, val_vi_len: 16}}
        runs:
          - name: kl_cyclical
            label: Cyclical
            groups: [kl, tf, strategies]
            settings: {{kl_anneal_type: Cyclical}}
          - name: tf_zero
            groups: [tf, strategies]
            settings: {{tfr: 0.0}}
          - name: broken
            groups: [kl]
            settings: {{data_root: {folder / 'no_such_data'}}}
        """
    path = folder / "plan.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@dataclass
class Sweep:
    plan: Path
    folder: Path
    code: int
    output: str
    seconds: float


@pytest.fixture(scope="session")
def tiny_sweep(tiny_data, tmp_path_factory) -> Sweep:
    base = tmp_path_factory.mktemp("sweep")
    plan = write_plan(base, tiny_data)
    folder = base / "runs" / "tiny"
    started = time.perf_counter()
    code, output = run_cli("sweep", str(plan), "--out", str(folder), "--threads", "1", "--quiet")
    return Sweep(plan, folder, code, output, time.perf_counter() - started)


def test_sweep_runs_the_notebook_per_run_and_reports_the_failing_one(tiny_sweep):
    assert tiny_sweep.code == 1, tiny_sweep.output  # one run failed
    summary = pd.read_csv(tiny_sweep.folder / "summary.csv")
    assert list(summary["run"]) == GOOD_RUNS + ["broken-s0"]
    assert list(summary["status"]) == ["done", "done", "failed"]
    for column in ("kl_anneal_type", "tfr", "num_epoch", "final_val_psnr", "best_val_psnr", "baseline_psnr",
                   "test_psnr", "test_baseline_psnr", "test_ssim", "test_baseline_ssim", "train_seconds", "run_seconds"):
        assert column in summary, column
    done = summary[summary["status"] == "done"]
    assert done[["final_val_psnr", "best_val_psnr", "baseline_psnr", "test_psnr", "test_ssim"]].notna().all().all()
    assert list(done["tfr"]) == [1.0, 0.0]

    for name in GOOD_RUNS:
        run = tiny_sweep.folder / name
        for file in (RUN_NOTEBOOK, RUN_MARKER, LOG_FILE, "config.json", "train_log.csv", "val_psnr.csv",
                     "val_rollout.npz", "checkpoints/best.pt", "test/submission.csv", "test/seq_0.gif",
                     "test/score.json"):
            assert (run / file).is_file(), run / file
        notebook = nbformat.read(run / RUN_NOTEBOOK, as_version=4)
        injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and f'run_name = "{name}"' in injected[0].source
        assert not any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))
        assert json.loads((run / RUN_MARKER).read_text())["run"] == name

    # The failing run: reported with its executed notebook and the error; no marker.
    broken = tiny_sweep.folder / "broken-s0"
    assert not (broken / RUN_MARKER).exists()
    error = summary.loc[summary["run"] == "broken-s0", "error"].item()
    assert "no_such_data" in error
    assert "FAILED broken-s0" in tiny_sweep.output and "no_such_data" in tiny_sweep.output
    assert str(broken / RUN_NOTEBOOK) in tiny_sweep.output
    notebook = nbformat.read(broken / RUN_NOTEBOOK, as_version=4)
    assert any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))
    assert json.loads((broken / ERROR_FILE).read_text())["error"] == error
    # Status lines per run and per epoch.
    assert "[kl_cyclical-s0] done in" in tiny_sweep.output
    assert re.search(r"\[tf_zero-s0\] epoch\s+2 ", tiny_sweep.output)


def test_a_second_sweep_skips_finished_runs_and_retries_the_failed_one(tiny_sweep):
    markers = {name: (tiny_sweep.folder / name / RUN_MARKER).stat().st_mtime_ns for name in GOOD_RUNS}
    code, output = run_cli("sweep", str(tiny_sweep.plan), "--out", str(tiny_sweep.folder), "--threads", "1",
                           "--quiet")
    assert code == 1
    for name in GOOD_RUNS:
        assert f"[{name}] skipped" in output
        assert (tiny_sweep.folder / name / RUN_MARKER).stat().st_mtime_ns == markers[name]
    assert "FAILED broken-s0" in output
    assert "0 ran, 2 skipped (finished earlier), 1 failed" in output
    summary = pd.read_csv(tiny_sweep.folder / "summary.csv")
    assert list(summary["status"]) == ["skipped", "skipped", "failed"]
    assert summary.loc[0, "final_val_psnr"] > 0  # a skipped run's numbers are still reported


def test_analysis_notebook_and_report_on_the_tiny_sweep(tiny_sweep, tmp_path):
    figures = tmp_path / "figures"
    code, output = run_cli("report", str(tiny_sweep.folder), "--figures", str(figures), "--quiet")
    assert code == 0, output
    for name in FIGURE_NAMES:
        for ext in ("pdf", "png"):
            assert (figures / f"{name}.{ext}").stat().st_size > 1000, name
    assert (figures / README_FIGURE[1]).is_file()
    assert (figures / "results_table.csv").is_file()
    pdf = (figures / REPORT_FILE).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1 + len(FIGURE_NAMES)  # title page + figures

    notebook = nbformat.read(tiny_sweep.folder / "analysis.ipynb", as_version=4)
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    data = [o.get("data", {}) for o in outputs]
    assert sum("image/png" in d for d in data) >= len(FIGURE_NAMES)  # figures shown inline
    assert any("application/vnd.jupyter.widget-view+json" in d for d in data)  # the scrubber
    markdown = "".join(d.get("text/markdown", "") for d in data)
    assert "kl_cyclical-s0/test/seq_0.gif" in markdown  # GIF links relative to the notebook
    assert "repeat-first-frame baseline" in markdown
    assert "ORACLE" in markdown  # the z-strategies caption says what best-of-N is
    assert "No candidate beats the reference" in markdown  # one seed each: no spread to beat
    finished = pd.read_csv(tiny_sweep.folder / "summary.csv").dropna(subset=["final_val_psnr"])
    best = finished.sort_values("final_val_psnr").iloc[-1]["run"]
    z_table = pd.read_csv(tiny_sweep.folder / best / "strategies" / "z_strategies.csv")
    assert set(z_table["strategy"]) == {"prior", "zero", "mean", "best_of"} and (z_table["split"] == "val").all()


def test_table_command_prints_the_results_with_seeds_and_baseline(tiny_sweep):
    code, output = run_cli("table", str(tiny_sweep.folder))
    assert code == 0, output
    rows = [line for line in output.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| run | n | val PSNR all frames | baseline all frames")
    summary = pd.read_csv(tiny_sweep.folder / "summary.csv").set_index("run")
    psnr = summary.loc["kl_cyclical-s0", "final_val_psnr"]
    cyclical = [row.split(" | ") for row in rows if row.startswith("| Cyclical | 1 | ")]
    assert len(cyclical) == 1 and float(cyclical[0][2]) == pytest.approx(psnr, abs=0.01), rows
    assert "| setting | final val PSNR, mean ± sd (n)" in output and "(n=1)" in output
    # The reference is the plan's first candidate of the group, whatever order the runs finished in.
    reference = [row for row in rows if row.startswith("| Cyclical | ") and "(n=1)" in row]
    assert len(reference) == 1 and "| +0.00 |" in reference[0], rows
    assert "sweep 'tiny'" in output  # what ran
    # Each ablation group against its first setting; one seed has no spread, so no verdict.
    assert "Teacher forcing, against Cyclical:" in output
    tf_zero = [row for row in rows if row.startswith("| tf_zero | ") and " dB | " in row]
    assert len(tf_zero) == 1 and tf_zero[0].startswith("| tf_zero | ") and "(n=1) | n/a |" in tf_zero[0], rows
    assert tf_zero[0].endswith(" dB | n/a |"), rows
    assert "KL annealing, against" not in output  # its other setting failed: nothing to compare


def test_plan_errors_name_the_file_and_the_key(tmp_path):
    data = tmp_path / "data"
    cases = {
        "colour: red\nruns: [{name: a}]\n": "unknown key 'colour'",
        "runs: [{name: a, setting: {tfr: 0.5}}]\n": "unknown key 'setting'",
        "runs: [{name: a, settings: {tfrr: 0.5}}]\n": "'tfrr' is not a config field",
        "runs: [{name: a, settings: {kl_anneal_type: Linear}}]\n": "kl_anneal_type='Linear'",
        "runs: [{name: a}, {name: a}]\n": "appears twice",
        "profile: gpu\nruns: [{name: a}]\n": "profile 'gpu'",
        "runs: []\n": "runs: expected a non-empty list",
        "seeds: [0, -1]\nruns: [{name: a}]\n": "seeds",
    }
    for text, message in cases.items():
        plan = write_plan(tmp_path, data, text)
        with pytest.raises(PlanError) as info:
            load_plan(plan)
        assert str(plan) in str(info.value) and message in str(info.value), (text, str(info.value))
    code, output = run_cli("sweep", str(plan), "--out", str(tmp_path / "runs"))
    assert code == 2 and output.startswith("error: ") and str(plan) in output
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_shipped_plans_cover_the_report():
    for name, profile in (("ablations", "quick-chain"), ("ablations-lab", "lab"), ("smoke", "smoke")):
        plan = load_plan(name)
        assert plan.profile == profile
        kl = [r for r in plan.runs if "kl" in r.groups]
        tf = [r for r in plan.runs if "tf" in r.groups]
        assert {r.config.kl_anneal_type for r in kl} >= {"Cyclical", "Monotonic", "None"}
        assert len({(r.config.tfr, r.config.tfr_sde, r.config.tfr_d_step) for r in kl}) == 1  # same TF
        assert len({(r.config.tfr, r.config.tfr_d_step) for r in tf}) >= 3
        assert len({r.config.kl_anneal_type for r in tf}) == 1  # same KL
    assert load_plan("ablations", seeds=[0, 1]).runs[1].name == "kl_none-s1"


def test_a_plan_naming_a_retired_option_is_refused(tmp_path):
    """First-frame conditioning (reference) is retired: a plan that sets it stops before any run starts."""
    plan = write_plan(tmp_path, Path("data/tiny"), """
        name: tf_first
        profile: smoke
        settings: {reference: first}
        runs:
          - {name: tf_zero, groups: [tf], settings: {tfr: 0.0}}
        """)
    with pytest.raises(PlanError, match="'reference' is not a config field"):
        load_plan(plan)


def test_notebooks_have_one_parameters_cell_with_every_knob():
    train = papermill.inspect_notebook(str(ROOT / "notebooks" / "train.ipynb"))
    for knob in ("run_name", "profile", "data_root", "output_dir", "num_epoch", "seed", "kl_anneal_type",
                 "kl_anneal_cycle", "kl_anneal_ratio", "tfr", "tfr_sde", "tfr_d_step", "tf_granularity",
                 "overrides"):
        assert knob in train, knob
    assert "sweep_dir" in papermill.inspect_notebook(str(ROOT / "notebooks" / "analysis.ipynb"))
    for name in ("train.ipynb", "analysis.ipynb"):
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # committed clean
        ids = [c.get("id") for c in json.loads((ROOT / "notebooks" / name).read_text())["cells"]]
        assert None not in ids and len(set(ids)) == len(ids), name  # nbformat 4.5: each cell its own id


def test_jobs_get_a_gpu_each_and_never_share_one(tmp_path, monkeypatch):
    """Two jobs run at once, on two GPUs, and no GPU ever serves two running jobs. Each fake job
    records when it starts and ends (as an ordered log, no clock); the first to start waits until a
    second has started, which two parallel workers do at once and one worker never would (it then
    gives up after wait_s, lets the other jobs through, and the log shows that they ran one at a time)."""
    import threading

    import lab4.sweep as sweep

    plan = load_plan(write_plan(tmp_path, tmp_path / "data", """
        profile: smoke
        seeds: [0, 1, 2]
        runs: [{name: a}, {name: b}]
        """))
    wait_s = 30.0  # only reached when the jobs do not run in parallel
    in_use: list[str] = []
    events: list[tuple[str, str, str]] = []  # ("start" | "end", run, gpu), in the order they happened
    lock = threading.Lock()
    two_running = threading.Event()

    def fake_execute(run, plan, sweep_dir, notebook, existing, env, printer, processes):
        gpu = env.get("CUDA_VISIBLE_DEVICES")
        with lock:
            assert gpu not in in_use, f"GPU {gpu} given to {run.name} while a job runs on it"
            in_use.append(gpu)
            events.append(("start", run.name, gpu))
            if len(in_use) == 2:
                two_running.set()
        if not two_running.wait(timeout=wait_s):
            two_running.set()  # run one at a time: let the rest through, the log tells
        with lock:
            in_use.remove(gpu)
            events.append(("end", run.name, gpu))
        return sweep.Outcome(run, "done", 0.05, device=f"GPU {gpu}")

    monkeypatch.setattr(sweep.runner, "visible_gpus", lambda: ["3", "5"])
    monkeypatch.setattr(sweep.runner, "_execute", fake_execute)
    outcomes, summary = sweep.run_sweep(plan, tmp_path / "runs", jobs=2, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 6
    starts = [(name, gpu) for kind, name, gpu in events if kind == "start"]
    assert sorted(name for name, _ in starts) == sorted(o.run.name for o in outcomes)  # each run once
    assert {gpu for _, gpu in starts} == {"3", "5"}
    # Two jobs ran at once: the second job started before the first one ended.
    assert [kind for kind, _, _ in events[:2]] == ["start", "start"], events
    assert events[0][2] != events[1][2]  # ... on two GPUs
    # And never more than two, nor two on one GPU: replaying the log.
    running: set[str] = set()
    for kind, name, gpu in events:
        if kind == "start":
            assert gpu not in running and len(running) < 2, events
            running.add(gpu)
        else:
            running.remove(gpu)
    assert set(pd.read_csv(summary)["device"]) == {"GPU 3", "GPU 5"}


# Config fields added after the first sweeps ran, each with a default that keeps the old behaviour.
NEWER_FIELDS = ("init", "warmup_iters", "prior")


def test_a_finished_run_from_before_new_config_fields_is_still_finished(tmp_path, monkeypatch):
    """A marker saved before `init`, `warmup_iters`, `prior` (and later fields) existed lacks them; read through
    today's Config they take their defaults, so the run counts as finished when its settings
    are the same, and as not finished when a real setting differs. Fields retired since, at the
    values every run has now, change nothing either."""
    import lab4.sweep as sweep
    from lab4.config import Config
    from lab4.runs.rules import RETIRED_FIELDS

    plan = load_plan(write_plan(tmp_path, tmp_path / "data", """
        profile: smoke
        runs: [{name: same, settings: {tfr: 0.5}}, {name: changed, settings: {tfr: 0.5}}]
        """))
    runs = {run.base: run for run in plan.runs}
    sweep_dir = tmp_path / "runs"

    def finish(run: sweep.RunSpec, config: dict) -> None:
        (sweep_dir / run.name).mkdir(parents=True, exist_ok=True)
        marker = {"run": run.name, "base": run.base, "seed": run.seed, "config": config, "seconds": 1.0}
        (sweep_dir / run.name / RUN_MARKER).write_text(json.dumps(marker))

    def without_newer_fields(config: Config) -> dict:
        assert all(getattr(config, name) == getattr(Config(), name) for name in NEWER_FIELDS)
        return {k: v for k, v in config.to_dict().items() if k not in NEWER_FIELDS}

    finish(runs["same"], {**without_newer_fields(runs["same"].config), **RETIRED_FIELDS})
    finish(runs["changed"], {**without_newer_fields(runs["changed"].config), "tfr": 0.25})
    assert sweep.marker_matches(sweep_dir / runs["same"].name, runs["same"])
    assert not sweep.marker_matches(sweep_dir / runs["changed"].name, runs["changed"])

    executed: list[str] = []

    def fake_execute(run, plan, sweep_dir, notebook, existing, env, printer, processes):
        executed.append(run.base)
        return sweep.Outcome(run, "done", 0.01)

    monkeypatch.setattr(sweep.runner, "_execute", fake_execute)
    outcomes, _ = sweep.run_sweep(plan, sweep_dir, progress=False)
    assert [(o.run.base, o.status) for o in outcomes] == [("same", "skipped"), ("changed", "done")]
    assert executed == ["changed"]


def test_a_sweep_of_other_seeds_keeps_the_earlier_seeds_rows(tmp_path, monkeypatch):
    import lab4.sweep as sweep

    plan_path = write_plan(tmp_path, tmp_path / "data", "profile: smoke\nruns: [{name: a}, {name: b}]\n")
    sweep_dir = tmp_path / "runs"

    def fake_execute(run, plan, sweep_dir, notebook, existing, env, printer, processes):
        (sweep_dir / run.name).mkdir(parents=True, exist_ok=True)
        return sweep.Outcome(run, "done", 0.01)

    monkeypatch.setattr(sweep.runner, "_execute", fake_execute)
    for seeds in ([0], [1, 2], [1]):
        sweep.run_sweep(load_plan(plan_path, seeds=seeds), sweep_dir, progress=False)
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary["run"]) == ["a-s0", "a-s1", "a-s2", "b-s0", "b-s1", "b-s2"]


def test_a_marker_config_today_cannot_read_is_not_finished(tmp_path):
    import lab4.sweep as sweep

    run = load_plan(write_plan(tmp_path, tmp_path / "data", "profile: smoke\nruns: [{name: a}]\n")).runs[0]
    run_dir = tmp_path / run.name
    run_dir.mkdir()
    for config in ({**run.config.to_dict(), "no_such_field": 1},  # unknown fields still differ
                   {**run.config.to_dict(), "prior": "no_such_prior"},  # so does a value Config refuses
                   {**run.config.to_dict(), "prior": "learned"},  # a newer field set to a real setting
                   None):
        (run_dir / RUN_MARKER).write_text(json.dumps({"run": run.name, "config": config}))
        assert not sweep.marker_matches(run_dir, run), config
    (run_dir / RUN_MARKER).write_text(json.dumps({"run": run.name, "config": run.config.to_dict()}))
    assert sweep.marker_matches(run_dir, run)


def test_run_training_keeps_a_finished_run_and_refuses_other_settings(tmp_path, monkeypatch):
    import lab4.train
    from lab4.sweep import experiment
    from lab4.runs.checkpoint import save_checkpoint

    cfg = experiment.build_config("smoke", str(tmp_path / "data"), {"tfr": 0.5})
    assert cfg.tfr == 0.5 and cfg.data_root == str(tmp_path / "data")
    assert experiment.build_config("smoke", None, {"tfr": 0.5}, tfr=0.25).tfr == 0.25  # a knob beats overrides
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg.save(run_dir / "config.json")
    # Finished: done.json agrees with the run's last commit (a checkpoint of its last epoch).
    save_checkpoint(run_dir / "checkpoints" / "last.pt", {"epoch": cfg.num_epoch, "config": cfg.to_dict(),
                                                          "best_psnr": 20.0, "best_epoch": cfg.num_epoch})
    (run_dir / "done.json").write_text(json.dumps({"epochs": cfg.num_epoch, "best_epoch": cfg.num_epoch}))
    monkeypatch.setattr(lab4.train, "train", lambda *a, **k: pytest.fail("trained a finished run"))
    assert experiment.run_training(cfg, run_dir, progress=False).root == run_dir
    other = experiment.build_config("smoke", str(tmp_path / "data"), {"tfr": 0.0})
    with pytest.raises(ValueError, match=r"tfr: saved 0.5, now 0.0"):
        experiment.run_training(other, run_dir, progress=False)
    moved = experiment.build_config("smoke", str(tmp_path / "other_data"), {"tfr": 0.5})
    with pytest.raises(ValueError, match=r"data_root: saved .*data', now .*other_data'"):
        experiment.run_training(moved, run_dir, progress=False)  # other data is another run
    with pytest.raises(ValueError, match="existing="):
        experiment.run_training(cfg, run_dir, existing="overwrite")


def copy_of_sweep(tiny_sweep, tmp_path: Path) -> Path:
    """The tiny sweep's folder copied under tmp_path (without checkpoints, GIFs and notebooks), to alter."""
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep.folder, copy, ignore=shutil.ignore_patterns("checkpoints", "*.gif", "*.ipynb"))
    return copy


def test_a_sweep_without_summary_is_read_from_its_run_markers(tiny_sweep, tmp_path):
    from lab4.report import ReportBook
    from lab4.runs.results import load_sweep

    copy = copy_of_sweep(tiny_sweep, tmp_path)
    (copy / "summary.csv").unlink()
    sweep = load_sweep(copy)
    assert sweep.run_names == GOOD_RUNS  # the failed run has no marker
    assert {"settings", "base", "seed", "groups", "final_val_psnr"} <= set(sweep.summary.columns)
    assert sweep.runs_in_group("kl") == ["kl_cyclical-s0"]
    table = ReportBook(sweep).results()
    assert list(table["run"]) == ["kl_cyclical", "tf_zero"] and table["val_psnr_mean"].notna().all()


def test_two_sweeps_never_share_a_folder(tmp_path):
    import lab4.sweep as sweep

    held = sweep.lock_folder(tmp_path)
    with pytest.raises(FileExistsError, match="another sweep is running"):
        sweep.lock_folder(tmp_path)
    held.close()
    sweep.lock_folder(tmp_path).close()  # free again


def test_the_strategies_plan_changes_only_each_runs_settings():
    plan = load_plan("strategies-studio")
    assert plan.profile == "quick" and {r.seed for r in plan.runs} == {0, 1, 2}
    reference = next(r for r in plan.runs if r.base == "quick").config.to_dict()
    for run in plan.runs:
        changed = {k for k, v in run.config.to_dict().items() if v != reference[k] and k != "seed"}
        assert changed == set(run.settings) - {"seed"}, run.name
    assert {"learned", "fixed"} == {r.config.prior for r in plan.runs}


def test_the_cpu_profiles_are_the_template_chain_with_a_budget_in_updates():
    """What a user relies on: quick and quick-chain do the same work on any data (a budget in
    updates), quick is quick-chain with teacher forcing 0, the KL weight at 1, the learned
    background and a budget of its own (quick-chain's, on the template's modules, is what `make`
    trains six times), the report's ablations change only what they compare, on one seed (the one
    mechanism check, its init too), and best-lab keeps the template's sizes."""
    from lab4.config import LEARNS, make_config

    quick, chain = make_config("quick"), make_config("quick-chain")
    assert quick.max_iters > 0 and chain.max_iters > 0
    assert quick.tfr == 0.0 and quick.kl_anneal_type == "None"
    assert {k for k, v in quick.to_dict().items() if v != getattr(chain, k)} == {
        "tfr", "kl_anneal_type", "background", "max_iters", "val_every"}
    assert quick.background == "learned" and chain.background == "none"
    ablations = load_plan("ablations")
    assert ablations.profile == "quick-chain" and {r.seed for r in ablations.runs} == {0} and len(ablations.runs) == 6
    kl_none = next(r for r in ablations.runs if r.base == "kl_none")
    assert kl_none.config.to_dict() == make_config(
        "quick-chain", {**LEARNS, "data_root": kl_none.config.data_root, "seed": kl_none.seed}).to_dict()
    for run in ablations.runs:
        changed = {k for k, v in run.config.to_dict().items() if v != getattr(chain, k)} - {"data_root", "seed"}
        mechanism = {"init"} if run.base == "kl_cyclical_zero_kl" else set()
        assert changed <= {"tfr", "tfr_d_step", "kl_anneal_type"} | mechanism, run.name
    lab, best_lab = make_config("lab"), make_config("best-lab")
    for name in ("F_dim", "L_dim", "N_dim", "D_out_dim", "batch_size", "train_vi_len", "max_iters"):
        assert getattr(best_lab, name) == getattr(lab, name), name
    assert best_lab.tfr == 0.0 and best_lab.kl_anneal_type == "None" and best_lab.output == "sigmoid"


def test_a_run_finished_in_a_checkout_at_another_path_is_still_finished(tmp_path):
    """Committed results from a clone elsewhere: the marker's absolute data_root differs, the
    dataset's path inside the project does not."""
    import lab4.sweep as sweep
    from lab4.sweep.experiment import resolve

    run = load_plan(write_plan(tmp_path, Path("data/tiny"), "profile: smoke\nruns: [{name: a}]\n")).runs[0]
    assert Path(run.config.data_root) == resolve("data/tiny")
    run_dir = tmp_path / run.name
    run_dir.mkdir()

    def finish(data_root: str, given: str) -> bool:
        marker = {"run": run.name, "config": {**run.config.to_dict(), "data_root": data_root},
                  "row": {"data_root": given}}
        (run_dir / RUN_MARKER).write_text(json.dumps(marker))
        return sweep.marker_matches(run_dir, run)

    assert finish("/elsewhere/lab4/data/tiny", "data/tiny")
    assert not finish("/elsewhere/lab4/data/other", "data/other")  # another dataset
    assert not finish("/elsewhere/data/tiny", "/elsewhere/data/tiny")  # outside its project: no telling


def test_captions_say_when_the_shown_runs_finished_not_when_the_sweep_first_started(tiny_sweep, tmp_path):
    from lab4.report import ReportBook
    from lab4.runs.results import load_sweep
    from lab4.sweep import RUN_MARKER

    copy = copy_of_sweep(tiny_sweep, tmp_path)
    for run, day in zip(GOOD_RUNS, ("2026-01-02", "2026-01-05")):
        marker = copy / run / RUN_MARKER
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "finished": f"{day}T10:00:00"}))
    book = ReportBook(load_sweep(copy))
    assert "finished 2026-01-02 to 2026-01-05" in book.what_ran()
    assert book.what_ran([GOOD_RUNS[0]]).endswith("finished 2026-01-02.")


def test_the_analysis_notebook_runs_on_committed_records_without_arrays(tiny_sweep, tmp_path):
    """A fresh clone's sweep records keep configs, logs and scores but no checkpoints, rollouts,
    GIFs or notebooks (.gitignore, runs/strategies): Run All still goes through, and the
    scrubber says in one line what to run first."""
    import shutil

    from lab4.report import run_analysis

    records = tmp_path / "records"
    shutil.copytree(tiny_sweep.folder, records, ignore=shutil.ignore_patterns(
        "checkpoints", "*.npz", "*.npy", "*.gif", "*.ipynb", "submission.csv", ".sweep.lock"))
    executed = run_analysis(records, None, output=tmp_path / "analysis.ipynb", progress=False)
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, [(o.get("ename"), o.get("evalue")) for o in errors]
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "has a validation rollout on disk" in markdown and "run `make`" in markdown


def test_a_runs_description_names_an_init_other_than_the_templates():
    """`sweep --list` and the report say when a run starts from other weights than the template's."""
    from lab4.sweep.knobs import describe_config

    runs = {r.name: r for r in load_plan("ablations").runs}
    assert "init zero-kl" in describe_config(runs["kl_cyclical_zero_kl-s0"].config)
    assert "init" not in describe_config(runs["kl_cyclical-s0"].config)
