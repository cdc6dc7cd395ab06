"""The training half of `lab4 bench`, and the run that puts both halves together.

The naive loop (lab4.speed.bench.naive) and each variant of the project's step run on the same
inputs from the same weights; `time_alternating` takes the steps to time as arguments.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from lab4.config import Config, make_config
from lab4.data.layout import FRAME_H, FRAME_W
from lab4.device import autocast, autocast_dtype
from lab4.model import VideoCVAE
from lab4.speed.bench.measure import (PROBE_BATCH, PROBE_CHANNELS, PROBE_KERNEL, PeakMemory,
                                      allocator_in_use, convolution_share, counted_gflop, device_name,
                                      peak_rss_lifetime_mb, probe_gflops, rotated, saved_activation_bytes, summary,
                                      sync)
from lab4.speed.bench.naive import naive_clip_loss, naive_train_step
from lab4.speed.bench.rollouts import bench_rollouts
from lab4.step import ClipLossModule, clip_loss, train_step
from lab4.train import build_model, build_optimizer

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def project_train_step(model: VideoCVAE, optimizer: torch.optim.Optimizer, frames: torch.Tensor,
                       labels: torch.Tensor, teacher_forced: bool, kl_weight: float, device: torch.device,
                       amp_dtype: torch.dtype | None, scaler: torch.amp.GradScaler,
                       grad_clip: float = 1.0) -> torch.Tensor:
    """What lab4.train's batch loop runs (the same function), on a bare model."""
    values = train_step(ClipLossModule(model), optimizer, scaler, frames, labels, teacher_forced, kl_weight,
                        device, amp_dtype, grad_clip)
    return values[0]


@dataclass
class Variant:
    """One configuration of the project's code: its precision, memory layout, and whether
    torch.compile compiles its step (forward and backward)."""
    precision: str
    channels_last: bool
    amp_dtype: torch.dtype | None
    compiled: bool = False

    @property
    def name(self) -> str:
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return (f"ours {dtype} {'channels_last' if self.channels_last else 'NCHW'}"
                + (" compiled" if self.compiled else ""))


SIZE_FIELDS = ("F_dim", "L_dim", "N_dim", "D_out_dim")


def bench_config(args: argparse.Namespace, precision: str = "fp32", channels_last: bool = True) -> Config:
    """The template's method (what the naive loop writes out) at the widths of the --sizes profile:
    a profile's other choices (quick's sigmoid output and cosine LR, say) are not what is compared."""
    sizes = make_config(args.sizes)
    return make_config("lab", {**{name: getattr(sizes, name) for name in SIZE_FIELDS},
                               "batch_size": args.batch, "train_vi_len": args.clip,
                               "precision": precision, "channels_last": channels_last, "device": args.device})


def parse_variants(args: argparse.Namespace, device: torch.device) -> list[Variant]:
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for p in precisions:
        if p not in PRECISIONS:
            raise ValueError(f"--precision {p!r}: expected one or more of {', '.join(PRECISIONS)}, comma-separated")
    default_cl = bench_config(args).channels_last
    layouts = {"config": [default_cl], "on": [True], "off": [False], "both": [True, False]}[args.channels_last]
    variants, seen = [], set()
    for p in precisions:
        for cl in layouts:
            dtype = autocast_dtype(bench_config(args, p, cl), device)
            if (dtype, cl) not in seen:
                seen.add((dtype, cl))
                variants.append(Variant(p, cl, dtype, getattr(args, "compile", False)))
    if any(v.amp_dtype == torch.float16 for v in variants) and device.type == "cpu":
        raise ValueError("--precision fp16 is for CUDA; on CPU use fp32 or bf16")
    return variants


def resolve_bench_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA GPU")
    return torch.device(name)


def time_alternating(steps: dict[str, Callable[[], Any]], warmup: int, reps: int, device: torch.device
                     ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, PeakMemory]]:
    """Time each step `reps` times after `warmup` untimed calls, taking turns in rotating order so that
    a machine's changing load hits all alike. Returns, per step, its times, its process CPU seconds
    (user, system) over the timed calls, and its peak memory."""
    names = list(steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu_times = {n: [0.0, 0.0] for n in names}
    memory = {n: PeakMemory(device) for n in names}
    for n in names:
        for _ in range(warmup):
            steps[n]()
        sync(device)
    for rep in range(reps):
        for n in rotated(names, rep):
            with memory[n]:
                sync(device)
                usage = resource.getrusage(resource.RUSAGE_SELF)
                start = time.perf_counter()
                steps[n]()
                sync(device)
                times[n].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_SELF)
            cpu_times[n][0] += after.ru_utime - usage.ru_utime
            cpu_times[n][1] += after.ru_stime - usage.ru_stime
    return times, cpu_times, memory


def run_bench(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.batch < 1 or args.clip < 2 or args.reps < 1 or args.warmup < 0 or args.rollout_frames < 2:
        raise ValueError("bench: need --batch >= 1, --clip >= 2, --reps >= 1, --warmup >= 0, --rollout-frames >= 2")
    device = resolve_bench_device(args.device)
    variants = parse_variants(args, device)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("tf", "free") for m in modes):
        raise ValueError(f"--modes {args.modes!r}: expected tf, free or tf,free")
    cfg = bench_config(args)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    # One set of weights for every model; each variant trains its own copy.
    naive_model = VideoCVAE(cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim, output=cfg.output,
                            prior=cfg.prior).to(device)
    naive_model.train()
    # The template's optimiser, as it builds it: not lab4's (which fuses Adam on a GPU).
    naive_opt = torch.optim.Adam(naive_model.parameters(), lr=cfg.lr)
    ours = []
    compiled_steps: dict[str, torch.nn.Module] = {}
    for v in variants:
        model = build_model(bench_config(args, v.precision, v.channels_last)).to(device)
        model.load_state_dict(naive_model.state_dict())
        model.train()
        ours.append((v, model, build_optimizer(cfg, model),
                     torch.amp.GradScaler(device.type, enabled=v.amp_dtype == torch.float16)))
        if v.compiled:
            compiled_steps[v.name] = ClipLossModule(model)
            compiled_steps[v.name].compile()  # in place: compiled on its first call, in the warm-up

    frames = torch.rand((args.batch, args.clip, 3, FRAME_H, FRAME_W), generator=gen).to(device)
    labels = torch.rand((args.batch, args.clip, 3, FRAME_H, FRAME_W), generator=gen).to(device)
    per_step = args.batch * (args.clip - 1)
    params = sum(p.numel() for p in naive_model.parameters())
    models = {"naive": naive_model, **{v.name: model for v, model, _, _ in ours}}
    # The naive loop's own precision and layout: fp32, NCHW.
    peaks = {"naive": probe_gflops(device, None, False),
             **{v.name: probe_gflops(device, v.amp_dtype, v.channels_last) for v in variants}}

    result: dict[str, Any] = {
        "settings": {
            "sizes": args.sizes, "F_dim": cfg.F_dim, "L_dim": cfg.L_dim, "N_dim": cfg.N_dim,
            "D_out_dim": cfg.D_out_dim, "params": params, "batch": args.batch, "clip": args.clip,
            "predicted_frames_per_step": per_step, "reps": args.reps, "warmup": args.warmup,
            "precision": args.precision, "channels_last": args.channels_last, "modes": modes,
            "rollout_frames": args.rollout_frames, "rollout_sequences": args.sequences,
            "rollout_reps": args.rollout_reps, "kl_weight": args.kl_weight, "grad_clip": cfg.grad_clip,
            "lr": cfg.lr, "seed": args.seed, "frame": [FRAME_H, FRAME_W],
            "naive": "template loop: per time step encode prev + current frame, label, posterior, "
                     "reparameterise, fuse, generate; fp32, NCHW, one backward per clip, Adam, grad clip",
            "variants": [{"name": v.name, "precision": v.precision, "channels_last": v.channels_last,
                          "amp_dtype": str(v.amp_dtype).replace("torch.", "") if v.amp_dtype else "fp32",
                          "compiled": v.compiled}
                         for v in variants],
        },
        "env": {
            "device": device.type, "device_name": device_name(device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "allocator": allocator_in_use(), "ld_preload": os.environ.get("LD_PRELOAD", ""),
            "tcmalloc_release_rate": os.environ.get("TCMALLOC_RELEASE_RATE", ""),
            "cpu_count": os.cpu_count(),
        },
        "peak_gflops": peaks,
        "peak_probe": f"one {PROBE_CHANNELS} -> {PROBE_CHANNELS} channel {PROBE_KERNEL}x{PROBE_KERNEL} convolution "
                      f"on ({PROBE_BATCH}, {PROBE_CHANNELS}, {FRAME_H}, {FRAME_W}), forward, best of 5",
        "train": {},
        "rollout": {},
        "ratios": {},
    }
    log(f"lab4 bench: {args.sizes} sizes, batch {args.batch}, clip {args.clip}, naive vs "
        f"{', '.join(v.name for v in variants)} on {device.type} ({torch.get_num_threads()} threads); "
        "the table follows")

    # --- training steps -----------------------------------------------------------------
    for mode in ([] if args.skip_train else modes):
        forced = mode == "tf"
        steps: dict[str, Callable[[], Any]] = {
            "naive": lambda: naive_train_step(naive_model, naive_opt, frames, labels, forced, args.kl_weight,
                                              cfg.grad_clip)}
        for v, model, opt, scaler in ours:
            steps[v.name] = (lambda v=v, model=model, opt=opt, scaler=scaler: project_train_step(
                model, opt, frames, labels, forced, args.kl_weight, device, v.amp_dtype, scaler, cfg.grad_clip))
            if v.compiled:
                steps[v.name] = (lambda v=v, opt=opt, scaler=scaler: train_step(
                    compiled_steps[v.name], opt, scaler, frames, labels, forced, args.kl_weight, device,
                    v.amp_dtype, cfg.grad_clip))
        names = list(steps)
        log(f"\ntraining step ({'teacher forced' if forced else 'free running: previous frame = own prediction'})"
            f": {args.warmup} warm-up + {args.reps} timed reps each, alternating")
        times, cpu_times, memory = time_alternating(steps, args.warmup, args.reps, device)
        losses: dict[str, Callable[[], torch.Tensor]] = {
            "naive": lambda: naive_clip_loss(naive_model, frames, labels, forced, args.kl_weight)[0]}
        for v, model, _, _ in ours:
            def loss_of(v=v, model=model) -> torch.Tensor:
                with autocast(device, v.amp_dtype):
                    return clip_loss(model, frames, labels, forced, args.kl_weight).loss
            losses[v.name] = loss_of
        saved = {n: saved_activation_bytes(losses[n], list(models[n].parameters())) for n in names}
        conv_share = {n: convolution_share(steps[n], device, args.skip_profile) for n in names}
        gflop = {n: counted_gflop(lambda n=n: losses[n]().backward()) / per_step for n in names}
        for model in models.values():
            model.zero_grad(set_to_none=True)  # what counting left behind; each step zeroes its own
        naive_fps = statistics.median(per_step / t for t in times["naive"])
        section = {}
        for n in names:
            fps = [per_step / t for t in times[n]]
            section[n] = {
                "frames_per_s": summary(fps), "step_s": times[n],
                "ratio_vs_naive": statistics.median(fps) / naive_fps,
                "peak_mem_mb": memory[n].peak / 2**20,
                "peak_mem_kind": "cuda_max_memory_allocated" if device.type == "cuda" else "sampled_rss",
                "saved_activations_mb": saved[n] / 2**20,
                # CPU seconds of the whole process over the timed reps: a high system share
                # is the allocator handing out fresh pages (page faults).
                "cpu_user_s": cpu_times[n][0], "cpu_sys_s": cpu_times[n][1],
                "gflop_per_frame": gflop[n], "gflop_per_s": gflop[n] * statistics.median(fps),
                "conv_share": conv_share[n],
            }
        result["train"][mode] = section
    result["env"]["peak_rss_mb_lifetime"] = peak_rss_lifetime_mb()

    # --- rollouts -----------------------------------------------------------------------
    if not args.skip_rollouts:
        result["rollout"] = bench_rollouts(args, device, naive_model, ours, gen, log)
        result["env"]["peak_rss_mb_lifetime"] = peak_rss_lifetime_mb()

    # --- the headline ratios, per variant ------------------------------------------------
    seqs = args.sequences
    for v in variants:
        ratios = {}
        if result["train"]:
            section = result["train"][modes[0]]
            ratios["train"] = section[v.name]["ratio_vs_naive"]
            # Frames/s if every FLOP ran at the probe's rate, against the naive loop's measured frames/s.
            ratios["train_ceiling"] = (peaks[v.name] / section[v.name]["gflop_per_frame"]
                                       / section["naive"]["frames_per_s"]["median"])
            if section[v.name]["conv_share"]:
                ratios["train_conv_bound"] = ratios["train"] / section[v.name]["conv_share"]
        if result["rollout"]:
            roll = result["rollout"]
            naive_seq = roll[f"naive: {seqs} sequential"]["frames_per_s"]["median"]
            batched = roll[f"{v.name}: {seqs} batched"]["frames_per_s"]["median"]
            ratios["rollout_batched_vs_naive_sequential"] = batched / naive_seq
            ratios["rollout_ceiling"] = peaks[v.name] / roll[f"{v.name}: {seqs} batched"]["gflop_per_frame"] / naive_seq
            if roll[f"{v.name}: {seqs} batched"]["conv_share"]:
                ratios["rollout_conv_bound"] = (ratios["rollout_batched_vs_naive_sequential"]
                                                / roll[f"{v.name}: {seqs} batched"]["conv_share"])
            if f"{v.name}: {seqs} sequential" in roll:
                ratios["rollout_batched_vs_own_sequential"] = (
                    batched / roll[f"{v.name}: {seqs} sequential"]["frames_per_s"]["median"])
        result["ratios"][v.name] = ratios
    headline = result["ratios"][variants[0].name]
    if "train" in headline:
        result["train_ratio"] = headline["train"]
    if "rollout_batched_vs_naive_sequential" in headline:
        result["rollout_ratio_batched_vs_sequential"] = headline["rollout_batched_vs_naive_sequential"]
    return result
