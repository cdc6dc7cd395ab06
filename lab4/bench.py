"""`python -m lab4 bench`: the project's training step and rollouts against the naive loop.

One process, one set of inputs. The NAIVE REFERENCE is written here plainly, the way the
assignment's template (and most solutions of it) would: a Python loop over the time
steps in which every module runs once per step on the batch, fp32, NCHW, one backward per
clip; its rollout is a per-step loop over one sequence at a time that copies every frame
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
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lab4.config import PROFILES, Config, make_config
from lab4.device import autocast, autocast_dtype
from lab4.model import VideoCVAE
from lab4.rollout import rollout
from lab4.step import ClipLossModule, clip_loss, train_step
from lab4.train import build_model, build_optimizer

FRAME_H, FRAME_W = 32, 64
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# ---------------------------------------------------------------------------------------
# The naive reference, as the template would write it
# ---------------------------------------------------------------------------------------

def naive_clip_loss(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
                    kl_weight: float, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """The template's training_one_step: a loop over time, every module once per step.

    frames, labels: (B, T, 3, H, W) in [0, 1]. Returns (loss, mse, kl), with the loss
    summed over the T-1 steps. `noise` (B*(T-1), N, H, W), laid out as `clip_loss` takes
    it, fixes the reparameterisation noise (for the equivalence test). With a learned
    prior the KL of each step is to p(z | previous frame, label) instead of N(0, I). Both
    KLs are written out here rather than imported from lab4.model, so that the
    equivalence test compares two independent writings of the maths.
    """
    batch, length = frames.shape[:2]
    if noise is not None:
        noise = noise.unflatten(0, (batch, length - 1))
    img = frames.permute(1, 0, 2, 3, 4)      # (T, B, C, H, W), as the template permutes
    label = labels.permute(1, 0, 2, 3, 4)
    mse = frames.new_zeros(())
    kl = frames.new_zeros(())
    out = img[0]
    for i in range(1, length):
        prev = img[i - 1] if teacher_forced else out.detach()
        human_feat_hat = model.frame_transformation(prev)
        human_feat = model.frame_transformation(img[i])
        label_feat = model.label_transformation(label[i])
        mu, logvar = model.Gaussian_Predictor(human_feat, label_feat)
        eps = torch.randn_like(mu) if noise is None else noise[:, i - 1]
        z = mu + eps * torch.exp(0.5 * logvar)
        parm = model.Decoder_Fusion(human_feat_hat, label_feat, z)
        raw = model.Generator(parm)
        mse = mse + F.mse_loss(model.fit_output(raw, prev), img[i])
        if model.learned_prior:
            mu_p, logvar_p = model.Prior_Predictor(human_feat_hat, label_feat)
            kl = kl + 0.5 * torch.sum(logvar_p - logvar + (logvar.exp() + (mu - mu_p).pow(2)) / logvar_p.exp()
                                      - 1) / batch
        else:
            kl = kl + (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch)
        out = model.to_image(raw, prev)
    return mse + kl_weight * kl, mse, kl


def naive_train_step(model: VideoCVAE, optimizer: torch.optim.Optimizer, frames: torch.Tensor,
                     labels: torch.Tensor, teacher_forced: bool = True, kl_weight: float = 1.0,
                     grad_clip: float = 1.0) -> torch.Tensor:
    """One optimiser step of the naive reference: zero_grad, loop loss, backward, clip, Adam.
    Returns the detached (loss, mse, kl), as lab4.step.train_step does."""
    optimizer.zero_grad()
    loss, mse, kl = naive_clip_loss(model, frames, labels, teacher_forced, kl_weight)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return torch.stack([loss.detach(), mse.detach(), kl.detach()])


@torch.no_grad()
def naive_rollout(model: VideoCVAE, first_frame: torch.Tensor, labels: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The template's test loop for ONE sequence: first_frame (3, H, W), labels (T, 3, H, W).

    Per step: encode the label and the last prediction, z from the prior, fuse, generate,
    and copy the frame to the host (`.cpu()`), as the template's decoded_frame_list does.
    """
    was_training = model.training
    model.eval()
    out = first_frame[None]
    decoded = [out.cpu()]
    for i in range(1, labels.shape[0]):
        z = torch.randn((1, model.N_dim) + tuple(out.shape[-2:]), generator=generator,
                        device=out.device)
        label_feat = model.label_transformation(labels[i][None])
        human_feat_hat = model.frame_transformation(out)
        parm = model.Decoder_Fusion(human_feat_hat, label_feat, z)
        out = model.to_image(model.Generator(parm), out)
        decoded.append(out.cpu())
    model.train(was_training)
    return torch.cat(decoded)


def naive_rollouts(model: VideoCVAE, first_frames: torch.Tensor, labels: torch.Tensor, z_mode: str = "prior",
                   samples: int = 1, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                   truth: torch.Tensor | None = None) -> torch.Tensor:
    """`lab4.rollout.rollout`'s signature the naive way: `naive_rollout` once per sequence, in turn."""
    if z_mode != "prior" or dtype is not None:
        raise ValueError(f"the naive rollout samples the prior in fp32; got z_mode={z_mode!r}, dtype={dtype}")
    return torch.stack([naive_rollout(model, first_frames[s], labels[s], generator).to(first_frames.device)
                        for s in range(first_frames.shape[0])])


def naive_train_step_as_trainer(step_module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                                scaler: torch.amp.GradScaler, frames: torch.Tensor, labels: torch.Tensor,
                                teacher_forced: bool, kl_weight: float, device: torch.device,
                                amp_dtype: torch.dtype | None, grad_clip: float) -> torch.Tensor:
    """`lab4.step.train_step`'s signature the naive way (fp32, the time loop), for a whole run."""
    return naive_train_step(step_module.model, optimizer, frames, labels, teacher_forced, kl_weight, grad_clip)


# ---------------------------------------------------------------------------------------
# The project's step, as lab4.train runs it
# ---------------------------------------------------------------------------------------

def project_train_step(model: VideoCVAE, optimizer: torch.optim.Optimizer, frames: torch.Tensor,
                       labels: torch.Tensor, teacher_forced: bool, kl_weight: float, device: torch.device,
                       amp_dtype: torch.dtype | None, scaler: torch.amp.GradScaler,
                       grad_clip: float = 1.0) -> torch.Tensor:
    """What lab4.train's batch loop runs (the same function), on a bare model."""
    values = train_step(ClipLossModule(model), optimizer, scaler, frames, labels, teacher_forced, kl_weight,
                        device, amp_dtype, grad_clip)
    return values[0]


# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Peak memory while a block runs: CUDA max_memory_allocated, or sampled RSS on CPU."""

    def __init__(self, device: torch.device, interval: float = 0.02):
        self.device = device
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = current_rss_bytes()
            if rss is not None:
                self.peak = max(self.peak, rss)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = max(self.peak, current_rss_bytes() or 0)
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = max(self.peak, torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak = max(self.peak, current_rss_bytes() or 0)


def saved_activation_bytes(fn: Callable[[], Any], params: list[torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for backward while fn() runs (parameters excluded)."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


# Frames per sequence of the rollout profiled for its convolutions' share (each step does the
# same work, so a short rollout shows the share of a long one).
CONV_PROFILE_FRAMES = 65
# The peak probe: batch, channels in = out (the lab sizes' widest feature width), kernel.
PROBE_BATCH, PROBE_CHANNELS, PROBE_KERNEL = 8, 192, 3


def probe_gflops(device: torch.device, amp_dtype: torch.dtype | None, channels_last: bool, reps: int = 5) -> float:
    """GFLOP/s of the probe convolution alone (forward, best of `reps`) at this precision and layout."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(PROBE_CHANNELS, PROBE_CHANNELS, PROBE_KERNEL, padding=PROBE_KERNEL // 2).to(device)
    conv = conv.to(memory_format=layout)
    x = torch.randn(PROBE_BATCH, PROBE_CHANNELS, FRAME_H, FRAME_W, device=device).contiguous(memory_format=layout)
    flops = 2 * PROBE_BATCH * PROBE_CHANNELS**2 * PROBE_KERNEL**2 * FRAME_H * FRAME_W
    times = []
    with torch.inference_mode(), autocast(device, amp_dtype):
        for rep in range(reps + 2):  # two untimed first
            sync(device)
            start = time.perf_counter()
            conv(x)
            sync(device)
            if rep >= 2:
                times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


def counted_gflop(fn: Callable[[], Any]) -> float:
    """GFLOP that fn runs (matmuls and convolutions, forward and backward), counted, not timed."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def convolution_share(fn: Callable[[], Any], device: torch.device) -> float | None:
    """The share of fn's time spent inside convolutions, forward and backward: the self CPU time,
    by torch.profiler, of every op with "conv" in its name (the kernels and their dispatch),
    over fn's wall time in the same run (so a slow moment of the machine scales both alike).

    CPU only (None elsewhere): on a GPU an op's CPU time is its launch, not its work.
    """
    if device.type != "cpu":
        return None
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with stderr_silenced():  # the profiler's start and stop each log a line there
        prof.start()
    try:
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
    finally:
        with stderr_silenced():
            prof.stop()
    return sum(e.self_cpu_time_total for e in prof.key_averages() if "conv" in e.key.lower()) / 1e6 / wall


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside: silences what C++ code writes there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "q1": q1, "q3": q3}


def allocator_in_use() -> str:
    """Which malloc the process runs on: tcmalloc or jemalloc when preloaded/linked, else glibc."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = os.environ.get("LD_PRELOAD", "")
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if f"lib{name}" in maps:
            return name
    return "glibc" if platform.system() == "Linux" else "system"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(extras)})" if extras else name


# ---------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------

@dataclass
class Variant:
    """One configuration of the project's code: its precision and memory layout."""
    precision: str
    channels_last: bool
    amp_dtype: torch.dtype | None

    @property
    def name(self) -> str:
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return f"ours {dtype} {'channels_last' if self.channels_last else 'NCHW'}"


SIZE_FIELDS = ("F_dim", "L_dim", "N_dim", "D_out_dim")


def bench_config(args: argparse.Namespace, precision: str = "fp32", channels_last: bool = True) -> Config:
    """The template's method (what the naive loop writes out) at the widths of the --sizes profile:
    a profile's other choices (quick's first-frame conditioning, say) are not what is compared."""
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
                variants.append(Variant(p, cl, dtype))
    if any(v.amp_dtype == torch.float16 for v in variants) and device.type == "cpu":
        raise ValueError("--precision fp16 is for CUDA; on CPU use fp32 or bf16")
    return variants


def resolve_bench_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA GPU")
    return torch.device(name)


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
    naive_opt = build_optimizer(cfg, naive_model)
    ours = []
    for v in variants:
        model = build_model(bench_config(args, v.precision, v.channels_last)).to(device)
        model.load_state_dict(naive_model.state_dict())
        model.train()
        ours.append((v, model, build_optimizer(cfg, model),
                     torch.amp.GradScaler(device.type, enabled=v.amp_dtype == torch.float16)))

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
                          "amp_dtype": str(v.amp_dtype).replace("torch.", "") if v.amp_dtype else "fp32"}
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
        names = list(steps)
        times: dict[str, list[float]] = {n: [] for n in names}
        cpu_times = {n: [0.0, 0.0] for n in names}
        memory = {n: PeakMemory(device) for n in names}
        log(f"\ntraining step ({'teacher forced' if forced else 'free running: previous frame = own prediction'})"
            f": {args.warmup} warm-up + {args.reps} timed reps each, alternating")
        for n in names:
            for _ in range(args.warmup):
                steps[n]()
            sync(device)
        for rep in range(args.reps):
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
        losses: dict[str, Callable[[], torch.Tensor]] = {
            "naive": lambda: naive_clip_loss(naive_model, frames, labels, forced, args.kl_weight)[0]}
        for v, model, _, _ in ours:
            def loss_of(v=v, model=model) -> torch.Tensor:
                with autocast(device, v.amp_dtype):
                    return clip_loss(model, frames, labels, forced, args.kl_weight).loss
            losses[v.name] = loss_of
        saved = {n: saved_activation_bytes(losses[n], list(models[n].parameters())) for n in names}
        conv_share = {n: convolution_share(steps[n], device) for n in names}
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


def whole_runs(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """A profile's whole run (training with its validations, then the test rollouts) twice, naive and ours.

    What `make` does once per ablation: the naive run swaps lab4's training step and rollouts
    for the naive reference (`naive_train_step`, `naive_rollout` per sequence) and changes
    nothing else (data, sampler, schedules, checkpoints, scoring); both start from the same
    seed and run in fp32, the naive loop's precision. Only the template's method has a naive
    writing: the profile must condition each step on the previous frame and add no paint or
    mask loss.
    """
    import tempfile
    from unittest import mock

    from lab4.experiment import run_test, run_training

    overrides: dict[str, Any] = {"device": args.device, "precision": "fp32"}
    if args.whole_run_epochs:
        overrides["num_epoch"] = args.whole_run_epochs
    if args.data:
        overrides["data_root"] = args.data
    cfg = make_config(args.whole_run, overrides)
    if cfg.reference != "previous" or cfg.reference_label or cfg.paint_weight or cfg.mask_weight:
        raise ValueError(f"--whole-run {args.whole_run}: the naive reference writes the template's method only "
                         "(reference=previous, no reference_label, paint_weight and mask_weight 0); "
                         "try quick-chain, lab or smoke")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    log(f"whole runs: profile {args.whole_run}, {cfg.num_epoch} epoch(s), data {cfg.data_root}; "
        "ours first, then naive")
    patches = {"ours": [], "naive": [mock.patch("lab4.train.train_step", naive_train_step_as_trainer),
                                     mock.patch("lab4.evaluate.rollout", naive_rollouts),
                                     mock.patch("lab4.predict.rollout", naive_rollouts)]}
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="lab4-bench-") as tmp:
        for name, active in patches.items():
            for patch in active:
                patch.start()
            try:
                start = time.perf_counter()
                run = run_training(cfg, Path(tmp) / name, existing="restart", progress=False)
                trained = time.perf_counter()
                test = run_test(run.root, gifs=False)
                done = time.perf_counter()
            finally:
                for patch in active:
                    patch.stop()
            epochs = run.epochs
            rows[name] = {
                "train_s": trained - start, "test_s": done - trained, "total_s": done - start,
                "final_val_psnr": float(epochs["val_psnr"].iloc[-1]),
                "baseline_psnr": float(epochs["baseline_psnr"].iloc[-1]),
                "test_psnr": test.score["model"]["overall"] if test.score else None,
            }
            log(f"  {name}: {rows[name]['total_s']:.1f} s")
    return {"profile": args.whole_run, "epochs": cfg.num_epoch, "data": str(cfg.data_root),
            "threads": torch.get_num_threads(), "runs": rows,
            "speedup": rows["naive"]["total_s"] / rows["ours"]["total_s"],
            "train_speedup": rows["naive"]["train_s"] / rows["ours"]["train_s"]}


def format_whole_runs(whole: dict[str, Any]) -> str:
    lines = [f"whole runs: profile {whole['profile']}, {whole['epochs']} epoch(s), data {whole['data']}, "
             f"{whole['threads']} threads (training with a validation rollout per epoch, then the test rollouts)",
             f"  {'':6} {'train+val s':>12} {'test s':>8} {'total s':>8} {'final val PSNR':>15} {'baseline':>9} "
             f"{'test PSNR':>10}"]
    for name, row in whole["runs"].items():
        test = "n/a" if row["test_psnr"] is None else f"{row['test_psnr']:.2f}"
        lines.append(f"  {name:6} {row['train_s']:12.1f} {row['test_s']:8.1f} {row['total_s']:8.1f} "
                     f"{row['final_val_psnr']:15.2f} {row['baseline_psnr']:9.2f} {test:>10}")
    lines.append(f"ours: the whole run {whole['speedup']:.2f}x as fast as naive (training with validations "
                 f"{whole['train_speedup']:.2f}x)")
    return "\n".join(lines)


def rotated(items: list, shift: int) -> list:
    """items rotated by `shift`: each repetition starts with another variant."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def bench_rollouts(args: argparse.Namespace, device: torch.device, naive_model: VideoCVAE,
                   ours: list, gen: torch.Generator, log: Callable[[str], None]) -> dict[str, Any]:
    """The test-set rollout: naive one sequence after another, ours sequential and batched.

    Sequential runs are interleaved sequence by sequence (naive seq 0, ours seq 0, naive
    seq 1, ...), so load changes hit all alike; each sequence's time also gives the
    1-sequence numbers. Every runner draws the same prior noise (one generator per
    sequence, seeded alike), so all do the same work.
    """
    seqs, length = args.sequences, args.rollout_frames
    first = torch.rand((seqs, 3, FRAME_H, FRAME_W), generator=gen).to(device)
    labels = torch.rand((seqs, length, 3, FRAME_H, FRAME_W), generator=gen).to(device)

    def noise(s: int = 0) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(args.seed + 1 + s)

    one: dict[str, Callable[[int, torch.Tensor], Any]] = {
        "naive": lambda s, lab: naive_rollout(naive_model, first[s], lab[s], noise(s))}
    batched: dict[str, Callable[[torch.Tensor], Any]] = {}
    for v, model, _, _ in ours:
        one[v.name] = (lambda s, lab, v=v, model=model: rollout(
            model, first[s:s + 1], lab[s:s + 1], generator=noise(s), dtype=v.amp_dtype))
        batched[v.name] = (lambda lab, v=v, model=model: rollout(
            model, first, lab, generator=noise(), dtype=v.amp_dtype))
    # Which sequences each runner rolls out one at a time: all of them, or only the first
    # (for the 1-sequence number) with --skip-sequential-ours.
    which = {n: range(seqs) if n == "naive" or not args.skip_sequential_ours else range(1) for n in one}

    log(f"\nrollouts: {length} frames per sequence, {seqs} sequences, {args.rollout_reps} timed rep(s) "
        "after a short warm-up, interleaved")
    warm = labels[:, :min(length, 4)]
    for n in one:
        one[n](0, warm)
    for n in batched:
        batched[n](warm)
    sync(device)
    # FLOPs per predicted frame, counted on the warm-up's few steps (the same per step throughout).
    gflop = {n: counted_gflop(lambda n=n: one[n](0, warm)) / (warm.shape[1] - 1) for n in one}

    seq_times: dict[str, list[list[float]]] = {n: [] for n in one}
    batch_times: dict[str, list[float]] = {n: [] for n in batched}
    memory = {n: PeakMemory(device) for n in list(one) + [f"{n} batched" for n in batched]}

    def timed(key: str, fn: Callable[[], Any]) -> float:
        with memory[key]:
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            return time.perf_counter() - start

    for rep in range(args.rollout_reps):
        for n in one:
            seq_times[n].append([])
        for s in range(seqs):
            for n in rotated(list(one), s + rep):
                if s in which[n]:
                    seq_times[n][-1].append(timed(n, lambda: one[n](s, labels)))
        for n in rotated(list(batched), rep):
            batch_times[n].append(timed(f"{n} batched", lambda: batched[n](labels)))

    # The convolutions' share, profiled on a shorter rollout: the naive loop's (the same for one
    # sequence or several in turn) and each variant's batched one.
    short = labels[:, :min(length, CONV_PROFILE_FRAMES)]
    conv_share = {"naive": convolution_share(lambda: one["naive"](0, short), device)}
    conv_share.update({n: convolution_share(lambda n=n: batched[n](short), device) for n in batched})

    frames_one = length - 1
    rows: dict[str, dict[str, Any]] = {}
    for n in one:
        per_seq = [t for rep in seq_times[n] for t in rep]
        rows[f"{n}: 1 seq"] = {"sequences": 1, "frames": frames_one, "gflop_per_frame": gflop[n],
                               "frames_per_s": summary([frames_one / t for t in per_seq]),
                               "seconds": per_seq, "peak_mem_mb": memory[n].peak / 2**20}
        if len(which[n]) == seqs:
            totals = [sum(rep) for rep in seq_times[n]]
            rows[f"{n}: {seqs} sequential"] = {
                "sequences": seqs, "frames": seqs * frames_one, "gflop_per_frame": gflop[n],
                "frames_per_s": summary([seqs * frames_one / t for t in totals]),
                "seconds": totals, "peak_mem_mb": memory[n].peak / 2**20}
    for n in batched:
        rows[f"{n}: {seqs} batched"] = {
            "sequences": seqs, "frames": seqs * frames_one, "gflop_per_frame": gflop[n],
            "frames_per_s": summary([seqs * frames_one / t for t in batch_times[n]]),
            "seconds": batch_times[n], "peak_mem_mb": memory[f"{n} batched"].peak / 2**20}
    naive_one = rows["naive: 1 seq"]["frames_per_s"]["median"]
    naive_seq = rows[f"naive: {seqs} sequential"]["frames_per_s"]["median"]
    profiled = {"naive: 1 seq": conv_share["naive"], f"naive: {seqs} sequential": conv_share["naive"],
                **{f"{n}: {seqs} batched": conv_share[n] for n in batched}}
    for name, row in rows.items():
        row["ratio_vs_naive"] = row["frames_per_s"]["median"] / (naive_one if row["sequences"] == 1 else naive_seq)
        row["gflop_per_s"] = row["gflop_per_frame"] * row["frames_per_s"]["median"]
        row["conv_share"] = profiled.get(name)
    order = [f"naive: 1 seq", f"naive: {seqs} sequential"]
    for n in batched:
        order += [k for k in (f"{n}: 1 seq", f"{n}: {seqs} sequential", f"{n}: {seqs} batched") if k in rows]
    return {k: rows[k] for k in order}


def peak_rss_lifetime_mb() -> float:
    """The process's peak resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}"


def spread(s: dict[str, float]) -> str:
    return f"{s['min']:.3g}-{s['max']:.3g}"


def format_table(result: dict[str, Any]) -> str:
    settings, env = result["settings"], result["env"]
    mem = "peak GPU MB" if env["device"] == "cuda" else "peak RSS MB"
    lines = [f"lab4 bench: {settings['sizes']} sizes (F={settings['F_dim']} L={settings['L_dim']} "
             f"N={settings['N_dim']} D={settings['D_out_dim']}, {settings['params'] / 1e6:.2f} M params) on "
             f"{env['device_name']}; torch {env['torch']}, {env['threads']} threads, allocator {env['allocator']}"
             + (f" (release rate {env['tcmalloc_release_rate']})"
                if env["allocator"] == "tcmalloc" and env.get("tcmalloc_release_rate") else "")]
    for mode, section in result["train"].items():
        title = "teacher forced" if mode == "tf" else "free running"
        lines.append(f"\ntraining step, {title}: batch {settings['batch']} x {settings['clip'] - 1} predicted "
                     f"frames; median of {settings['reps']} reps after {settings['warmup']} warm-up, alternating")
        lines.append(f"  {'':28} {'frames/s':>9} {'min-max':>13} {'step s':>7} {'vs naive':>9} {'GFLOP/s':>8} "
                     f"{mem:>12} {'saved act MB':>13} {'cpu sys %':>9} {'conv %':>6}")
        for name, row in section.items():
            fps = row["frames_per_s"]
            cpu = row["cpu_user_s"] + row["cpu_sys_s"]
            sys_share = 100 * row["cpu_sys_s"] / cpu if cpu > 0 else 0.0
            lines.append(f"  {name:28} {fps['median']:9.3g} {spread(fps):>13} "
                         f"{statistics.median(row['step_s']):7.3g} {row['ratio_vs_naive']:8.2f}x "
                         f"{row['gflop_per_s']:8.3g} {row['peak_mem_mb']:12.0f} {row['saved_activations_mb']:13.0f} "
                         f"{sys_share:9.0f} {percent(row['conv_share']):>6}")
    if result["rollout"]:
        lines.append(f"\nrollouts from the prior: {settings['rollout_frames']} frames per sequence, "
                     f"{settings['rollout_reps']} rep(s); '1 seq' is the median over the sequences")
        lines.append(f"  {'':40} {'frames/s':>9} {'min-max':>13} {'seconds':>8} {'vs naive':>9} {'GFLOP/s':>8} "
                     f"{mem:>12} {'conv %':>6}")
        for name, row in result["rollout"].items():
            fps = row["frames_per_s"]
            lines.append(f"  {name:40} {fps['median']:9.3g} {spread(fps):>13} "
                         f"{statistics.median(row['seconds']):8.3g} {row['ratio_vs_naive']:8.2f}x "
                         f"{row['gflop_per_s']:8.3g} {row['peak_mem_mb']:12.0f} {percent(row['conv_share']):>6}")
    gflop_rows = [(f"training ({mode})", section) for mode, section in result["train"].items()]
    if result["rollout"]:
        gflop_rows.append(("rollout", {n.split(":")[0]: row for n, row in result["rollout"].items()}))
    if gflop_rows:
        lines.append("\nGFLOP per predicted frame (counted): " + "; ".join(
            f"{title} " + ", ".join(f"{n} {row['gflop_per_frame']:.3g}" for n, row in rows.items())
            for title, rows in gflop_rows))
    lines.append(f"device peak ({result['peak_probe']}): " + ", ".join(
        f"{'naive (fp32, NCHW)' if n == 'naive' else n} {g:.0f} GFLOP/s" for n, g in result["peak_gflops"].items()))
    seqs = settings["rollout_sequences"]
    lines.append("")
    for name, ratios in result["ratios"].items():
        parts = []
        if "train" in ratios:
            parts.append(f"training {ratios['train']:.2f}x the naive loop")
        if "rollout_batched_vs_naive_sequential" in ratios:
            parts.append(f"{seqs} sequences batched {ratios['rollout_batched_vs_naive_sequential']:.2f}x "
                         f"the naive {seqs} sequential")
        own = ""
        if "rollout_batched_vs_own_sequential" in ratios:
            own = f" ({ratios['rollout_batched_vs_own_sequential']:.2f}x its own sequential)"
        lines.append(f"{name}: " + ", ".join(parts) + own)
        ceilings = [f"{what} {ratios[key]:.2f}x" for key, what in
                    (("train_ceiling", "training"), ("rollout_ceiling", f"{seqs} sequences batched")) if key in ratios]
        if ceilings:
            lines.append(f"  ceiling at the device peak: {', '.join(ceilings)} (its FLOPs at the probe's GFLOP/s, "
                         "against the naive loop's measured speed)")
        bounds = [f"{what} {ratios[key]:.2f}x" for key, what in
                  (("train_conv_bound", "training"), ("rollout_conv_bound", f"{seqs} sequences batched"))
                  if key in ratios]
        if bounds:
            lines.append(f"  bound by its convolutions: {', '.join(bounds)} (its profiled convolution time alone, "
                         "all other work taking none, against the naive loop's measured speed)")
    lines.append(f"process peak RSS {env['peak_rss_mb_lifetime']:.0f} MB (getrusage); memory columns: "
                 + ("torch.cuda.max_memory_allocated per variant" if env["device"] == "cuda" else
                    "RSS sampled while the variant ran (whole process); saved act = tensors autograd keeps"))
    if env["device"] == "cpu":
        lines.append("conv % = share of the time spent in convolutions (torch.profiler, over one extra step, or "
                     f"a {CONV_PROFILE_FRAMES}-frame rollout); the rest is elementwise work, copies and Python")
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    from lab4.io import atomic_write_text

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
    from lab4.cli import TORCH_COMMANDS

    p = sub.add_parser("bench", help=TORCH_COMMANDS["bench"][1], description=__doc__,
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
    p.add_argument("--modes", default="tf",
                   help="training modes: tf (teacher forced), free (own predictions fed back), or tf,free")
    p.add_argument("--rollout-frames", type=int, default=630, help="frames per rolled-out sequence (default 630)")
    p.add_argument("--sequences", type=int, default=5, help="sequences rolled out (default 5, the test set's)")
    p.add_argument("--rollout-reps", type=int, default=1, help="timed repetitions of each rollout (default 1)")
    p.add_argument("--skip-train", action="store_true", help="time the rollouts only")
    p.add_argument("--skip-rollouts", action="store_true", help="time the training steps only")
    p.add_argument("--skip-sequential-ours", action="store_true",
                   help="do not time the project's rollout run one sequence at a time")
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
