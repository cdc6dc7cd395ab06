"""What `lab4 bench` measures with: device syncs, peak memory, FLOPs, the device's peak, profiles."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from lab4.data.layout import FRAME_H, FRAME_W
from lab4.device import autocast


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
    # A GPU runs one such call in microseconds, less than a launch and a sync take: time many
    # calls between two syncs there.
    calls = 1 if device.type == "cpu" else 50
    times = []
    with torch.inference_mode(), autocast(device, amp_dtype):
        for rep in range(reps + 2):  # two untimed first
            sync(device)
            start = time.perf_counter()
            for _ in range(calls):
                conv(x)
            sync(device)
            if rep >= 2:
                times.append((time.perf_counter() - start) / calls)
    return flops / min(times) / 1e9


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int = 8192, reps: int = 5) -> float:
    """TFLOP/s of one square matmul of `size` at `dtype` (best of `reps`): about the most this device's
    arithmetic does at that precision, for the share of it the model's steps reach. fp32 is timed
    with TF32 off, so it is plain fp32."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    calls = 1 if device.type == "cpu" else 10
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    times = []
    try:
        with torch.inference_mode():
            for rep in range(reps + 1):  # one untimed first
                sync(device)
                start = time.perf_counter()
                for _ in range(calls):
                    a @ b
                sync(device)
                if rep >= 1:
                    times.append((time.perf_counter() - start) / calls)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return 2 * size**3 / min(times) / 1e12


def counted_gflop(fn: Callable[[], Any]) -> float:
    """GFLOP that fn runs (matmuls and convolutions, forward and backward), counted, not timed."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def convolution_share(fn: Callable[[], Any], device: torch.device, skip: bool = False) -> float | None:
    """The share of fn's time spent inside convolutions, forward and backward: the self CPU time,
    by torch.profiler, of every op with "conv" in its name (the kernels and their dispatch),
    over fn's wall time in the same run (so a slow moment of the machine scales both alike).

    CPU only (None elsewhere): on a GPU an op's CPU time is its launch, not its work.
    """
    if device.type != "cpu" or skip:
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


def peak_rss_lifetime_mb() -> float:
    """The process's peak resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def rotated(items: list, shift: int) -> list:
    """items rotated by `shift`: each repetition starts with another variant."""
    shift %= len(items)
    return items[shift:] + items[:shift]
