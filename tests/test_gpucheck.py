"""`python -m lab4 gpucheck --smoke --device cpu` runs every section the GPU check runs, at tiny sizes,
on a Python that lacks tqdm, pandas, matplotlib and the notebook packages (as a bare GPU image may):
the check that waits for a GPU cannot rot. No timing claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab4.cli import main
from lab4.speed import gpucheck
from lab4.speed.gpucheck.report import markdown

# What a machine with only PyTorch (and numpy, pillow) lacks: imports of these fail in the check's processes.
ABSENT = ("tqdm", "pandas", "matplotlib", "seaborn", "papermill", "ipywidgets", "nbformat", "IPython")


def without_packages(tmp_path: Path) -> dict[str, str]:
    """An environment in which Python starts with ABSENT unimportable (sitecustomize marks them missing)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{n!r}] = None\n" for n in ABSENT))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def check_short_training(result: dict, epochs: int) -> None:
    """A short training's record: `epochs` epochs of the steps it says it ran, and a full epoch's time
    labelled "measured" when those steps were the whole epoch, else "extrapolated" from them (and
    then computed from the last epoch's frames/s, as its label says)."""
    assert len(result["epochs"]) == epochs
    steps, full = result["steps_per_epoch"], result["full_steps_per_epoch"]
    assert 1 <= steps <= full and all(epoch["steps"] == steps for epoch in result["epochs"])
    kind = result["full_epoch_train_s_kind"]
    if steps == full:
        assert kind == "measured"
    else:
        assert kind.startswith(f"extrapolated: {steps} of {full} steps run"), kind
    frames_per_step = result["batch"] * (result["train_vi_len"] - 1)
    assert result["full_epoch_train_s"] == pytest.approx(
        full * frames_per_step / result["epochs"][-1]["train_frames_per_s"], rel=1e-9)


@pytest.mark.timeout(240)
def test_smoke_check_runs_every_section_without_optional_packages(tmp_path: Path, tiny_data: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "lab4", "gpucheck", "--smoke", "--device", "cpu", "--out", str(out),
                           "--data", str(tiny_data)], capture_output=True, text=True, env=without_packages(tmp_path),
                          timeout=230)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    sections = results["sections"]
    assert list(sections) == list(gpucheck.SECTIONS)
    ran = [n for n in gpucheck.SECTIONS if n not in ("ddp", "compile")]
    for name in ran:
        assert sections[name]["status"] == "ok", (name, sections[name].get("error"))
        assert (out / "logs" / f"{name}.log").is_file()
    # No GPU here: the two GPU-only sections say why they did not run.
    assert "2+ CUDA GPUs" in sections["ddp"]["reason"] and "GPU only" in sections["compile"]["reason"]

    peak = sections["peak"]["result"]
    assert peak["device"] == "cpu" and peak["cuda_devices"] == 0
    assert set(peak["matmul_tflops"]) == {"bf16", "fp32"} and min(peak["matmul_tflops"].values()) > 0
    assert peak["env"]["packages"]["pandas"] is False and peak["env"]["packages"]["tqdm"] is False
    assert any("tqdm is not installed" in n for s in sections.values() for n in s.get("notes", []))

    summary = results["summary"]
    rows = {r["name"]: r for r in summary["bench_batch_2"]}
    assert list(rows) == ["naive", "ours fp32 channels_last", "ours bf16 channels_last"]
    assert all(r["frames_per_s"] > 0 and 0 < r["share_of_bf16_peak"] for r in rows.values())
    assert set(summary["bench_batches"]) == {"4"}
    assert set(summary["rollout_ratios"]) == {"ours fp32 channels_last", "ours bf16 channels_last"}
    assert set(summary["epochs"]) == {"train-lab", "train-best-lab", "train-lab-large-batch"}
    for key, epoch in summary["epochs"].items():
        assert epoch["full_epoch_train_s"] > 0 and isinstance(epoch["meets_10s_target"], bool)
        assert isinstance(epoch["val_psnr"], float) and isinstance(epoch["baseline_psnr"], float)
    assert summary["epochs"]["train-best-lab"]["profile"] == "best-lab"
    large = sections["train-lab-large-batch"]["result"]
    assert large["batch"] == 4 and large["lr"] == pytest.approx(1e-3 * 2 ** 0.5) and "sqrt" in large["lr_rule"]
    for name in summary["epochs"]:
        check_short_training(sections[name]["result"], epochs=2)
    assert summary["naive_epoch_train_s"] > 0 and set(summary["epoch_speedup_vs_naive"]) == set(summary["epochs"])
    assert summary["autocast"] == {"bf16": True}

    text = (out / "results.md").read_text()
    for heading in ("## Sections", "## Peak", "## Training step, batch 2", "## Training step, batch 4",
                    "## Short trainings", "## Autocast, DDP, compile"):
        assert heading in text
    assert "wrote" in done.stdout and "results.md" in done.stdout


@pytest.mark.timeout(120)
def test_a_failing_or_slow_section_is_recorded_and_the_rest_still_run(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(gpucheck.CAPS, "peak", (1, 1))  # less than its process needs to start torch
    out = tmp_path / "out"
    code = main(["gpucheck", "--smoke", "--device", "cpu", "--out", str(out), "--data", str(tmp_path / "missing"),
                 "--sections", "peak,data,train-lab,amp"])
    assert code == 1
    sections = json.loads((out / "results.json").read_text())["sections"]
    assert sections["peak"]["status"] == "timeout" and "time limit" in sections["peak"]["error"]
    assert sections["data"]["status"] == "failed" and "missing" in sections["data"]["error"]
    assert sections["train-lab"]["status"] == "skipped" and "no dataset" in sections["train-lab"]["reason"]
    assert sections["bench"] == {"status": "skipped", "reason": "not in --sections"}
    text = (out / "results.md").read_text()
    assert "| peak | timeout |" in text and "| data | failed |" in text


def test_the_command_imports_no_torch_and_its_sections_no_optional_package(tmp_path: Path) -> None:
    # tqdm loads with lab4.train when it is there; when it is not, a stand-in replaces it (the test above).
    optional = [n for n in ABSENT if n != "tqdm"]
    code = ("import sys; import lab4.speed.gpucheck; assert 'torch' not in sys.modules, 'the parent loads torch'; "
            "import lab4.speed.gpucheck.sections; "
            f"loaded = [n for n in {optional!r} if sys.modules.get(n) is not None]; assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_markdown_of_an_empty_or_partial_result() -> None:
    assert "# lab4 gpucheck" in markdown({"sections": {}})
    partial = {"sections": {"peak": {"status": "failed", "seconds": 2.0, "error": "Traceback ...\nRuntimeError: no"},
                            "bench": {"status": "timeout", "seconds": 9.0, "result": {}}}}
    text = markdown(partial)
    assert "| peak | failed | 2.0 | RuntimeError: no |" in text and "| bench | timeout |" in text


def test_the_optimiser_is_fused_only_on_a_gpu() -> None:
    """CPU runs keep torch's default Adam, so their numbers do not change."""
    import torch

    from lab4.config import make_config
    from lab4.train import build_optimizer

    for profile in ("lab", "quick"):
        for optimizer in ("adam", "adamw"):
            opt = build_optimizer(make_config(profile, {"optimizer": optimizer}), torch.nn.Linear(2, 2))
            assert not opt.param_groups[0]["fused"]
