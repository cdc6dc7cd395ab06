"""The sections of `lab4 gpucheck`, each run in a process of its own (lab4.speed.gpucheck.__main__).

Each `section_NAME(plan, rec)` saves its numbers with `rec.save(...)` as it goes, so that a
section stopped at its time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lab4 import data as lab4_data
from lab4.config import PROFILES, make_config
from lab4.device import autocast_dtype
from lab4.speed.bench import add_commands as add_bench_commands
from lab4.speed.bench import format_table, run_bench
from lab4.speed.bench.compare import Variant
from lab4.speed.bench.measure import device_name, matmul_tflops, probe_gflops
from lab4.speed.gpucheck.recorder import OPTIONAL_PACKAGES, Recorder
from lab4.synth import generate_dataset
from lab4.train import train

SIZE_FIELDS = ("F_dim", "L_dim", "N_dim", "D_out_dim")
DTYPE_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve(plan: dict[str, Any]) -> torch.device:
    if plan["device"] == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA GPU")
    if plan["device"] == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(plan["device"])


def installed(name: str) -> bool:
    if getattr(sys.modules.get(name), "lab4_stand_in", False):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # blocked, or replaced by a stand-in without a spec
        return False


def section_peak(plan: dict[str, Any], rec: Recorder) -> None:
    device = resolve(plan)
    cuda = torch.cuda.is_available()
    env: dict[str, Any] = {
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "cudnn": torch.backends.cudnn.version() if cuda else None, "cpu_count": __import__("os").cpu_count(),
        "device_name": device_name(device),
        "packages": {name: installed(name) for name in OPTIONAL_PACKAGES},
    }
    if cuda:
        props = torch.cuda.get_device_properties(device if device.type == "cuda" else 0)
        env.update(gpu_memory_gb=props.total_memory / 2**30, capability=f"{props.major}.{props.minor}",
                   multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported())
    # The variant of the bench that `lab4 train` runs here with precision=auto (what the
    # training sections' epochs are timed at).
    dtype = autocast_dtype(make_config("lab", {"device": device.type}), device)
    rec.save(device=device.type, cuda_devices=torch.cuda.device_count() if cuda else 0, env=env,
             train_precision=DTYPE_NAMES[dtype], train_variant=Variant("auto", True, dtype).name)

    size = 512 if plan["smoke"] else 8192
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if device.type == "cpu":
        dtypes.pop("fp16")  # CPU fp16 matmuls are not what any run here uses
    matmul = {}
    for name, dt in dtypes.items():
        matmul[name] = matmul_tflops(device, dt, size)
        rec.save(matmul_tflops=matmul, matmul_size=size)
    conv = {"fp32 NCHW": probe_gflops(device, None, False),
            "fp32 channels_last": probe_gflops(device, None, True),
            "bf16 channels_last": probe_gflops(device, torch.bfloat16, True)}
    rec.save(probe_conv_gflops=conv)


def section_data(plan: dict[str, Any], rec: Recorder) -> None:
    root = Path(plan["data"])
    start = time.perf_counter()
    if plan["generate"]:
        generate_dataset(root, size=plan["data_size"], progress=False)
        rec.save(generated=plan["data_size"], generate_s=time.perf_counter() - start)
    lab4_data.check_layout(root, ("train", "val"))
    start = time.perf_counter()
    train_split = lab4_data.load_split(root, "train")
    val_split = lab4_data.load_split(root, "val")
    rec.save(root=str(root), train_frames=len(train_split), val_frames=len(val_split),
             load_s=time.perf_counter() - start)


def bench_args(plan: dict[str, Any], extra: list[str]) -> argparse.Namespace:
    if plan["smoke"]:
        # The CPU profile of the convolutions' share is the slowest part of a tiny bench, and a
        # GPU does not run it: left out.
        base = ["--sizes", "smoke", "--clip", "4", "--reps", "1", "--warmup", "1", "--rollout-frames", "5",
                "--sequences", "2", "--skip-profile"]
    else:
        base = ["--sizes", "lab", "--clip", "16", "--reps", "5", "--warmup", "2", "--rollout-frames", "630",
                "--sequences", "5"]
    parser = argparse.ArgumentParser()
    add_bench_commands(parser.add_subparsers())
    return parser.parse_args(["bench", *base, "--device", resolve(plan).type, *extra])


def section_bench(plan: dict[str, Any], rec: Recorder) -> None:
    extra = ["--batch", "2", "--precision", "fp32,bf16", "--skip-sequential-ours"]
    result = run_bench(bench_args(plan, extra))
    print(format_table(result), flush=True)
    rec.save(bench=result, options=extra)


def section_bench_batches(plan: dict[str, Any], rec: Recorder) -> None:
    precision = "fp32" if plan["smoke"] else "fp32,bf16"
    batches: dict[str, Any] = {}
    for batch in plan["bench_batches"]:
        extra = ["--batch", str(batch), "--precision", precision, "--skip-rollouts"]
        if not plan["smoke"]:
            extra += ["--reps", "3", "--warmup", "1"]
        batches[str(batch)] = run_bench(bench_args(plan, extra))
        print(format_table(batches[str(batch)]), flush=True)
        rec.save(batches=batches)


def section_compile(plan: dict[str, Any], rec: Recorder) -> None:
    runs: dict[str, Any] = {}
    for batch in (2, plan["large_batch"]):
        extra = ["--batch", str(batch), "--precision", "bf16", "--compile", "--skip-rollouts", "--warmup", "3"]
        start = time.perf_counter()
        runs[str(batch)] = run_bench(bench_args(plan, extra))
        runs[str(batch)]["wall_s_with_compilation"] = time.perf_counter() - start
        print(format_table(runs[str(batch)]), flush=True)
        rec.save(batches=runs)


def short_training(plan: dict[str, Any], key: str, profile: str, batch: int | None = None,
                   precision: str = "auto", epochs: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """`profile` trained for a few epochs on the check's data, each cut to `steps` steps (default: as many
    as fit the plan's epoch_target_s at the bench's step time, at most the full epoch)."""
    root = Path(plan["data"])
    base = make_config(profile)
    overrides: dict[str, Any] = {"data_root": str(root), "device": plan["device"], "precision": precision,
                                 "num_epoch": epochs or plan["epochs"], "val_every": 1, "per_save": 1000}
    lr_rule = None
    if batch is not None and batch != base.batch_size:
        # Adam's noise scale: the learning rate by the square root of the batch ratio.
        overrides.update(batch_size=batch, lr=base.lr * math.sqrt(batch / base.batch_size))
        lr_rule = f"lr {base.lr:g} x sqrt({batch} / {base.batch_size})"
    if plan["smoke"]:
        # The smoke profile's sizes and clips (the bench's smoke clips are as long).
        overrides.update({name: PROFILES["smoke"][name] for name in (*SIZE_FIELDS, "train_vi_len")},
                         val_vi_len=24)
    cfg = make_config(profile, overrides)
    train_split = lab4_data.load_split(root, "train")
    sampler = lab4_data.ClipSampler(len(train_split), cfg.train_vi_len, cfg.clip_mode, cfg.shuffle)
    full_steps = max(1, sampler.clips_per_epoch(1.0) // cfg.batch_size)
    if steps is None:
        step_s = plan.get("hints", {}).get("step_s")
        steps = plan["default_steps"] if not step_s else int(plan["epoch_target_s"] / step_s)
        steps = max(1 if plan["smoke"] else 10, steps)
    steps = min(steps, full_steps)
    partial = min(1.0, steps * cfg.batch_size / sampler.num_clips)
    cfg = make_config(profile, {**overrides, "partial": partial})
    steps = max(1, sampler.clips_per_epoch(partial) // cfg.batch_size)
    frames_per_step = cfg.batch_size * (cfg.train_vi_len - 1)

    run_dir = Path(plan["work"]) / "runs" / key
    start = time.perf_counter()
    result = train(cfg, run_dir, force=True, progress=False)
    wall = time.perf_counter() - start
    epochs_out = []
    for row in result.epochs:
        train_s = steps * frames_per_step / row["train_frames_per_s"]
        epochs_out.append({
            "epoch": row["epoch"], "steps": steps, "train_s": train_s, "seconds": row["seconds"],
            "val_and_checkpoint_s": row["seconds"] - train_s, "train_frames_per_s": row["train_frames_per_s"],
            "train_loss": row["train_loss"], "val_psnr": row["val_psnr"], "baseline_psnr": row["baseline_psnr"],
            "val_ssim": row["val_ssim"], "baseline_ssim": row["baseline_ssim"]})
    last = epochs_out[-1]
    full_train_s = full_steps * frames_per_step / last["train_frames_per_s"]
    return {
        "profile": profile, "batch": cfg.batch_size, "lr": cfg.lr, "lr_rule": lr_rule, "precision": cfg.precision,
        "amp": DTYPE_NAMES[autocast_dtype(cfg, resolve(plan))], "train_vi_len": cfg.train_vi_len,
        "val_vi_len": cfg.val_vi_len, "steps_per_epoch": steps, "full_steps_per_epoch": full_steps,
        "partial": partial, "epochs": epochs_out, "wall_s": wall,
        "full_epoch_train_s": full_train_s,
        "full_epoch_train_s_kind": ("measured" if steps == full_steps else
                                    f"extrapolated: {steps} of {full_steps} steps run, at their measured frames/s"),
        "val_psnr": last["val_psnr"], "baseline_psnr": last["baseline_psnr"], "best_psnr": result.best_psnr,
        "finite": all(math.isfinite(float(r["train_loss"])) and math.isfinite(float(r["val_psnr"]))
                      for r in epochs_out),
    }


def section_train_lab(plan: dict[str, Any], rec: Recorder) -> None:
    rec.save(**short_training(plan, "lab", "lab"))


def section_train_best_lab(plan: dict[str, Any], rec: Recorder) -> None:
    rec.save(**short_training(plan, "best-lab", "best-lab"))


def section_train_lab_large_batch(plan: dict[str, Any], rec: Recorder) -> None:
    # A larger batch is fewer, wider steps: the epoch is run whole unless smoke.
    steps = plan["default_steps"] if plan["smoke"] else None
    rec.save(**short_training(plan, "lab-large-batch", "lab", batch=plan["large_batch"],
                              steps=steps if steps else 10**9))


def section_amp(plan: dict[str, Any], rec: Recorder) -> None:
    device = resolve(plan)
    precisions = ["fp16", "bf16"] if device.type == "cuda" else ["bf16"]
    if device.type != "cuda":
        rec.note("fp16 autocast is for CUDA (lab4 refuses it on CPU): bf16 only here")
    runs: dict[str, Any] = {}
    for precision in precisions:
        try:
            runs[precision] = short_training(plan, f"amp-{precision}", "lab", precision=precision, epochs=1,
                                             steps=2 if plan["smoke"] else 30)
        except Exception as exc:  # the other precision still runs
            runs[precision] = {"error": f"{type(exc).__name__}: {exc}"}
        rec.save(runs=runs)
    failed = [p for p, r in runs.items() if "error" in r or not r.get("finite")]
    if failed:
        raise RuntimeError(f"autocast {', '.join(failed)}: failed or not finite (see runs)")


def section_ddp(plan: dict[str, Any], rec: Recorder) -> None:
    run_dir = Path(plan["work"]) / "runs" / "ddp"
    steps_per_rank = 2 if plan["smoke"] else 30
    train_split = lab4_data.load_split(Path(plan["data"]), "train")
    partial = min(1.0, 2 * steps_per_rank * 2 * 16 / len(train_split))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "lab4",
           "train", "--profile", "lab", "--data", plan["data"], "--run-dir", str(run_dir), "--force", "--quiet",
           "--set", "num_epoch=1", "--set", f"partial={partial}", "--set", "per_save=1000"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    rec.save(command=" ".join(cmd), returncode=done.returncode, seconds=time.perf_counter() - start,
             stderr_tail=done.stderr[-3000:])
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited with {done.returncode}")
    summary = json.loads((run_dir / "done.json").read_text())
    rec.save(ranks=summary.get("ranks"), ranks_in_sync=summary.get("ranks_in_sync"),
             val_psnr=summary.get("final", {}).get("val_psnr"), baseline_psnr=summary.get("final", {}).get("baseline_psnr"))
    if summary.get("ranks_in_sync") is not True:
        raise RuntimeError("the two ranks ended with different weights")
