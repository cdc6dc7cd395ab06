"""`python -m lab4 bench`: the project's training step and rollouts against the naive loop.

One process, one set of inputs. The NAIVE REFERENCE (lab4.speed.bench.naive) is written plainly,
the way the assignment's template (and most solutions of it) would: a Python loop over the time
steps in which every module runs once per step on the batch (lab4.step.training_one_step), fp32,
NCHW, one backward per clip; its rollout is a per-step loop over one sequence at a time that copies every frame
to the host as it goes. OURS is the project's code: `lab4.step.clip_loss` under the
precision's autocast on a model built by `lab4.train.build_model` (channels_last per the
config), and `lab4.rollout.rollout` with all sequences in one batch.

The training step is teacher forced (as in the template's first epochs, and the mode
that can be batched completely); `--modes tf,free` adds the free-running step, where
the previous frame is the model's own detached prediction. After warm-up the variants
take turns, one step each in rotating order, so that a machine's changing load hits all
alike; each reports the median and spread of its repetitions. Rollouts interleave
sequence by sequence the same way. Frames/s counts predicted frames: batch x (T-1) per
training step, sequences x (T-1) per rollout.

The device's ceiling: each variant's FLOPs per predicted frame are counted once
(torch.utils.flop_counter, forward and backward), and one convolution of the model's own
kind (3x3, stride 1, at the frame size, 192 -> 192 channels: the lab sizes' widest feature
width, D; batch 8) is timed alone at each variant's precision and layout. Its GFLOP/s is about the best this device does
on this work, so FLOPs / that rate bounds how fast a variant can go: `ceiling` says how many
times the naive loop that would be. A target above the ceiling needs fewer FLOPs or faster
arithmetic (a lower precision), not better code.

What the convolutions leave: on CPU one more training step of each variant, and a
65-frame rollout of the naive loop and of each variant's batched rollout, run under
torch.profiler, give the share of the time spent inside convolutions (`conv_share`,
`conv %` in the table). With every other op taking no time at all a variant would run
its measured speed / that share: `bound by its convolutions` says how many times the
naive loop that would be. It is below the ceiling where the model's convolutions (1x1,
depthwise, narrow ones) run slower than the probe's; what lies between it and the
measured ratio is all the rest (elementwise ops, copies, Python).

Memory: on CUDA, torch.cuda.max_memory_allocated per variant (exact). On CPU the peak
resident set size sampled while the variant runs (`peak_rss_mb`: the whole process, and
an allocator may keep memory an earlier phase freed, so compare with care), the
process's lifetime peak (`getrusage` ru_maxrss), and the bytes of activations autograd
saves for backward in one step (`saved_activations_mb`: exact, independent of the
allocator).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lab4.commands import LAZY_COMMANDS
from lab4.config import PROFILES
from lab4.data.layout import FRAME_H, FRAME_W
from lab4.io import atomic_write_text
from lab4.speed.bench.compare import (PRECISIONS, Variant, bench_config, parse_variants, project_train_step,
                                      resolve_bench_device, run_bench)
from lab4.speed.bench.naive import (naive_clip_loss, naive_rollout, naive_rollouts, naive_train_step,
                                    naive_train_step_as_trainer)
from lab4.speed.bench.table import format_table
from lab4.speed.bench.whole_run import format_whole_runs, whole_runs

__all__ = ["FRAME_H", "FRAME_W", "PRECISIONS", "Variant", "add_commands", "bench_config", "cmd_bench",
           "format_table", "format_whole_runs", "naive_clip_loss", "naive_rollout", "naive_rollouts",
           "naive_train_step", "naive_train_step_as_trainer", "parse_variants", "project_train_step",
           "resolve_bench_device", "run_bench", "whole_runs"]


def cmd_bench(args: argparse.Namespace) -> int:
    if args.whole_run:
        result = {"whole_run": whole_runs(args)}
        print(format_whole_runs(result["whole_run"]))
    else:
        result = run_bench(args)
        print(format_table(result))
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help=LAZY_COMMANDS["bench"][1], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="lab", choices=list(PROFILES),
                   help="the widths (F/L/N/D) of this profile, with the template's method: lab (default), "
                        "quick (CPU), smoke (tests)")
    p.add_argument("--batch", type=int, default=2, help="clips per training step (default 2, the template's)")
    p.add_argument("--clip", type=int, default=16, help="frames per training clip (default 16)")
    p.add_argument("--reps", type=int, default=5, help="timed training steps per variant (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps per variant first (default 2)")
    p.add_argument("--precision", default="auto,bf16",
                   help="the project's precision, or several comma-separated (each a variant), from "
                        "auto, fp32, bf16, fp16; auto follows the config (fp32 on CPU, bf16/fp16 on CUDA). "
                        "Default auto,bf16: on CPU both fp32 and bf16, on CUDA bf16 once. "
                        "The first variant gives the headline ratios")
    p.add_argument("--channels-last", default="config", choices=["config", "on", "off", "both"],
                   help="the project's memory layout: the config's (channels_last on), on, off, or both")
    p.add_argument("--compile", action="store_true",
                   help="compile the project's training step with torch.compile (each variant; on a GPU, "
                        "where launches cost more than the arithmetic at these sizes; its first steps, the "
                        "warm-up, compile)")
    p.add_argument("--modes", default="tf",
                   help="training modes: tf (teacher forced), free (own predictions fed back), or tf,free")
    p.add_argument("--rollout-frames", type=int, default=630, help="frames per rolled-out sequence (default 630)")
    p.add_argument("--sequences", type=int, default=5, help="sequences rolled out (default 5, the test set's)")
    p.add_argument("--rollout-reps", type=int, default=1, help="timed repetitions of each rollout (default 1)")
    p.add_argument("--skip-train", action="store_true", help="time the rollouts only")
    p.add_argument("--skip-rollouts", action="store_true", help="time the training steps only")
    p.add_argument("--skip-sequential-ours", action="store_true",
                   help="do not time the project's rollout run one sequence at a time")
    p.add_argument("--skip-profile", action="store_true",
                   help="on CPU, do not profile the convolutions' share of the time (conv %%; a GPU never does)")
    p.add_argument("--kl-weight", type=float, default=1.0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--whole-run", metavar="PROFILE", choices=list(PROFILES),
                   help="instead: train and test PROFILE's whole run (as make does per ablation) once with the "
                        "naive step and rollouts, once with ours, and compare the wall time (quick-chain: make's)")
    p.add_argument("--whole-run-epochs", type=int, default=0, help="--whole-run: epochs (default the profile's)")
    p.add_argument("--data", help="--whole-run: dataset root (default the profile's)")
    p.add_argument("--out", default="bench.json", help="where to write the numbers (default bench.json)")
    p.set_defaults(func=cmd_bench)
