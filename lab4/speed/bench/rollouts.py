"""The rollout half of `lab4 bench`: the naive loop one sequence after another, ours sequential and batched."""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch

from lab4.model import VideoCVAE
from lab4.rollout import rollout
from lab4.speed.bench.measure import (CONV_PROFILE_FRAMES, FRAME_H, FRAME_W, PeakMemory, convolution_share,
                                      counted_gflop, rotated, summary, sync)
from lab4.speed.bench.naive import naive_rollout


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
    conv_share = {"naive": convolution_share(lambda: one["naive"](0, short), device, args.skip_profile)}
    conv_share.update({n: convolution_share(lambda n=n: batched[n](short), device, args.skip_profile)
                       for n in batched})

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
