"""`lab4 bench`'s printed table, from the result it writes as JSON."""

from __future__ import annotations

import statistics
from typing import Any

from lab4.speed.bench.measure import CONV_PROFILE_FRAMES


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
