"""`python -m lab4 gpucheck --out DIR`: what this project does on a GPU, measured in one command.

Made for a fresh GPU machine that has PyTorch and nothing else of ours: no network, no
installs. It needs torch, numpy and pillow; tqdm is optional (a missing one is replaced by a
silent progress bar, and the results say so). The command itself imports none of them: each
section runs in its own Python process, with its own time limit, so that a section that
fails, hangs or leaves the GPU in a bad state is recorded and the next one still runs, and
so that a broken torch still yields a results.json saying so.

Sections, in order (a section skipped for lack of time says so):
  peak            the device, and its measured peak: one large matmul at bf16, fp16 and fp32
                  (TF32 off), and the bench's probe convolution
  data            the dataset: `lab`-size synthetic data generated (23,410 train frames) unless
                  --data names one, then decoded once into its cache
  bench           `lab4 bench` at the lab sizes, batch 2: the naive template loop against ours,
                  fp32 and bf16, training steps and 630-frame rollouts of 5 sequences
  train-lab       a short `lab` training (2 epochs, the epochs cut to fit the time; the full
                  epoch's time is then extrapolated from the measured frames/s, and labelled so)
  train-best-lab  the same for `best-lab`
  amp             one short epoch with fp16 autocast (with loss scaling) and one with bf16
  bench-batches   the bench's training steps at larger batches
  train-lab-large-batch  `lab` at a larger batch with the learning rate scaled by sqrt(batch / 2)
  ddp             a 2-process DistributedDataParallel run (torchrun, NCCL), with 2+ GPUs only
  compile         the bench's bf16 step with torch.compile, GPU only

`--smoke --device cpu` runs every section at tiny sizes on the CPU (the test suite does).
Writes DIR/results.json (everything), DIR/results.md (the tables) and DIR/logs/SECTION.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from lab4.commands import LAZY_COMMANDS
from lab4.speed.gpucheck.report import headline, markdown

SECTIONS = ("peak", "data", "bench", "train-lab", "train-best-lab", "amp", "bench-batches",
            "train-lab-large-batch", "ddp", "compile")
# Seconds each section may take at most (full size, smoke); the check's overall budget cuts them further.
CAPS = {"peak": (120, 60), "data": (300, 90), "bench": (240, 120), "train-lab": (180, 60),
        "train-best-lab": (180, 60), "amp": (150, 60), "bench-batches": (150, 60),
        "train-lab-large-batch": (150, 60), "ddp": (180, 60), "compile": (240, 60)}
MIN_SECTION_S = 20  # a section is skipped when the budget leaves it less than this


# ---------------------------------------------------------------------------------------
# The parent: plans, runs each section in a child process, assembles the results
# ---------------------------------------------------------------------------------------

def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else out / "work"
    smoke = args.smoke
    if args.data:
        data = Path(args.data).resolve()
    else:
        data = work / "data-tiny" if smoke else Path("data/synthetic_lab").resolve()
    return {
        "out": str(out), "work": str(work), "data": str(data), "generate": not args.data,
        "data_size": "tiny" if smoke else "lab", "device": args.device, "smoke": smoke,
        "sizes": "smoke" if smoke else "lab", "budget_s": args.budget,
        "epochs": 2,
        # The training sections' epochs are cut to about this long, from the bench's step time.
        "epoch_target_s": 0.3 if smoke else 20,
        "default_steps": 3 if smoke else 200,
        "bench_batches": [4] if smoke else [8, 32],
        "large_batch": 4 if smoke else 16,
    }


def run_check(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    plan = make_plan(args)
    out = Path(plan["out"])
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "sections").mkdir(parents=True, exist_ok=True)
    started = time.time()
    deadline = time.monotonic() + args.budget
    wanted = [s.strip() for s in args.sections.split(",")] if args.sections else list(SECTIONS)
    for name in wanted:
        if name not in SECTIONS:
            raise ValueError(f"--sections: unknown section {name!r}; expected some of {', '.join(SECTIONS)}")
    results: dict[str, Any] = {
        "check": {"command": command_line(args),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
                  "budget_s": args.budget, "plan": plan},
        "sections": {},
    }
    for name in SECTIONS:
        if name not in wanted:
            results["sections"][name] = {"status": "skipped", "reason": "not in --sections"}
            continue
        reason = skip_reason(name, plan, results["sections"])
        left = deadline - time.monotonic()
        if reason is None and left < MIN_SECTION_S:
            reason = f"out of the check's time budget ({args.budget:.0f} s)"
        if reason:
            results["sections"][name] = {"status": "skipped", "reason": reason}
            log(f"{name}: skipped ({reason})")
            continue
        plan["hints"] = hints(plan, results["sections"])
        timeout = min(CAPS[name][1 if plan["smoke"] else 0], left)
        log(f"{name}: running (at most {timeout:.0f} s) ...")
        section = run_section(name, plan, timeout, out)
        results["sections"][name] = section
        log(f"{name}: {section['status']} in {section['seconds']:.1f} s"
            + (f": {section['error'].splitlines()[-1]}" if section.get("error") else ""))
        write_results(results, out)  # so far, in case the machine is taken away
    results["check"]["seconds"] = time.time() - started
    results["summary"] = headline(results["sections"], plan)
    write_results(results, out)
    return results


def command_line(args: argparse.Namespace) -> str:
    parts = ["python -m lab4 gpucheck", f"--out {args.out}", f"--device {args.device}", f"--budget {args.budget:g}"]
    parts += [f"--{name} {getattr(args, name)}" for name in ("work", "data", "sections") if getattr(args, name)]
    return " ".join(parts + (["--smoke"] if args.smoke else []))


def skip_reason(name: str, plan: dict[str, Any], done: dict[str, Any]) -> str | None:
    peak = done.get("peak", {}).get("result", {})
    cuda = peak.get("device") == "cuda"
    if name.startswith("train") or name in ("amp", "ddp"):
        if done.get("data", {}).get("status") not in ("ok", None):
            return "no dataset (the data section did not finish)"
    if name == "ddp" and peak.get("cuda_devices", 0) < 2:
        return (f"needs 2+ CUDA GPUs (this machine: {peak.get('cuda_devices', 0)}); "
                "tests/test_distributed.py runs 2 gloo ranks on CPU")
    if name == "compile" and not cuda:
        return "GPU only: on CPU the compiled step ran slower than eager (docs/speed.md)"
    return None


def hints(plan: dict[str, Any], done: dict[str, Any]) -> dict[str, Any]:
    """What later sections take from earlier ones: the device, its peak, the bench's step time."""
    peak = done.get("peak", {}).get("result", {})
    out: dict[str, Any] = {"device": peak.get("device", "cpu" if plan["device"] == "cpu" else "cuda"),
                           "train_variant": peak.get("train_variant")}
    bench = done.get("bench", {}).get("result", {}).get("bench", {})
    row = bench.get("train", {}).get("tf", {}).get(peak.get("train_variant") or "", {})
    if row.get("step_s"):
        out["step_s"] = statistics.median(row["step_s"])
    naive = bench.get("train", {}).get("tf", {}).get("naive", {})
    if naive.get("step_s"):
        out["naive_step_s"] = statistics.median(naive["step_s"])
    data = done.get("data", {}).get("result", {})
    out["train_frames"] = data.get("train_frames")
    return out


def run_section(name: str, plan: dict[str, Any], timeout: float, out: Path) -> dict[str, Any]:
    spec = out / "sections" / f"{name}.plan.json"
    result_path = out / "sections" / f"{name}.json"
    spec.write_text(json.dumps({"section": name, "plan": plan}, indent=2))
    result_path.unlink(missing_ok=True)
    start = time.monotonic()
    with open(out / "logs" / f"{name}.log", "w") as log_file:
        # Its own session, so that a timeout ends its children too (torchrun's ranks, data workers).
        proc = subprocess.Popen([sys.executable, "-m", "lab4.speed.gpucheck", "--child", str(spec), str(result_path)],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
            status = "ok" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code, status = None, "timeout"
    section: dict[str, Any] = {"status": status, "seconds": time.monotonic() - start, "exit_code": code}
    if result_path.is_file():
        written = json.loads(result_path.read_text())
        section["result"] = written.get("result", {})
        if written.get("error"):
            section["error"] = written["error"]
        if written.get("notes"):
            section["notes"] = written["notes"]
    if status == "timeout":
        section["error"] = f"stopped after {timeout:.0f} s, its time limit; what it wrote before is kept"
    elif status == "failed" and "error" not in section:
        tail = (out / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
        section["error"] = f"exit code {code}; the log's end:\n{tail}"
    return section


def write_results(results: dict[str, Any], out: Path) -> None:
    for path, text in ((out / "results.json", json.dumps(results, indent=2, default=str) + "\n"),
                       (out / "results.md", markdown(results))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

def cmd_gpucheck(args: argparse.Namespace) -> int:
    if args.budget <= 0:
        raise ValueError("--budget: expected a positive number of seconds")
    results = run_check(args)
    out = Path(results["check"]["plan"]["out"])
    statuses = {n: s["status"] for n, s in results["sections"].items()}
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'} in {results['check']['seconds']:.0f} s: "
          + ", ".join(f"{n} {s}" for n, s in statuses.items()))
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpucheck", help=LAZY_COMMANDS["gpucheck"][1], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/gpucheck", help="folder for results.json, results.md, logs/ "
                                                         "(default runs/gpucheck)")
    p.add_argument("--work", help="folder for the sections' training runs (default OUT/work)")
    p.add_argument("--data", help="dataset root to train on (default: synthetic lab-size data in "
                                  "data/synthetic_lab, generated when missing; --smoke: tiny data in WORK)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, every section in seconds (for tests, on CPU)")
    p.add_argument("--budget", type=float, default=470.0,
                   help="seconds for the whole check (default 470: under 8 minutes); sections that would "
                        "start with less than 20 s left are skipped")
    p.add_argument("--sections", help=f"comma-separated subset of: {', '.join(SECTIONS)} (default all)")
    p.set_defaults(func=cmd_gpucheck)

