"""`lab4 gpucheck`'s headline numbers and results.md, from its sections' JSON (no torch needed)."""

from __future__ import annotations

import statistics
from typing import Any

# The issue's target: one epoch of lab-size data (23,410 frames, clips of 16) in 10 s or less.
EPOCH_TARGET_S = 10.0


def get(d: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def fmt(x: Any, spec: str = ".3g", unit: str = "") -> str:
    if x is None or x == "":
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:{spec}}{unit}"
    return str(x)


def bench_rows(bench: dict[str, Any], bf16_tflops: float | None) -> list[dict[str, Any]]:
    """One row per training variant of a bench result (teacher forced), with its share of the bf16 peak."""
    rows = []
    for name, row in (get(bench, "train", "tf") or {}).items():
        gflops = row.get("gflop_per_s")
        rows.append({"name": name, "frames_per_s": get(row, "frames_per_s", "median"),
                     "step_s": statistics.median(row["step_s"]) if row.get("step_s") else None,
                     "ratio_vs_naive": row.get("ratio_vs_naive"), "gflop_per_s": gflops,
                     "share_of_bf16_peak": gflops / (bf16_tflops * 1000) if gflops and bf16_tflops else None,
                     "peak_mem_mb": row.get("peak_mem_mb")})
    return rows


def headline(sections: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    peak = get(sections, "peak", "result") or {}
    bf16 = get(peak, "matmul_tflops", "bf16")
    out: dict[str, Any] = {"device": peak.get("device"), "device_name": get(peak, "env", "device_name"),
                           "bf16_matmul_tflops": bf16, "statuses": {n: s.get("status") for n, s in sections.items()}}
    bench = get(sections, "bench", "result", "bench")
    if bench:
        out["bench_batch_2"] = bench_rows(bench, bf16)
        out["rollout_ratios"] = {name: r.get("rollout_batched_vs_naive_sequential")
                                 for name, r in (bench.get("ratios") or {}).items()}
    batches = get(sections, "bench-batches", "result", "batches") or {}
    if batches:
        out["bench_batches"] = {b: bench_rows(r, bf16) for b, r in batches.items()}
    trainings = {}
    for key in ("train-lab", "train-best-lab", "train-lab-large-batch"):
        r = get(sections, key, "result")
        if r and r.get("full_epoch_train_s"):
            trainings[key] = {k: r.get(k) for k in ("profile", "batch", "lr", "lr_rule", "amp", "full_epoch_train_s",
                                                     "full_epoch_train_s_kind", "val_psnr", "baseline_psnr")}
            trainings[key]["meets_10s_target"] = r["full_epoch_train_s"] <= EPOCH_TARGET_S
    if trainings:
        out["epochs"] = trainings
    naive_step = None
    naive_row = get(bench, "train", "tf", "naive") if bench else None
    if naive_row and naive_row.get("step_s"):
        naive_step = statistics.median(naive_row["step_s"])
    lab = get(sections, "train-lab", "result")
    same_steps = lab and bench and (lab.get("batch"), lab.get("train_vi_len")) == (
        get(bench, "settings", "batch"), get(bench, "settings", "clip"))
    if naive_step and same_steps and lab.get("full_epoch_train_s"):
        naive_epoch = naive_step * lab["full_steps_per_epoch"]
        out["naive_epoch_train_s"] = naive_epoch
        out["naive_epoch_train_s_kind"] = ("extrapolated: the naive loop's bench step time (fp32, same batch and "
                                           f"clip) x the {lab['full_steps_per_epoch']} steps of a full epoch; "
                                           "ours are whole epochs, with the loop's data handling")
        out["epoch_speedup_vs_naive"] = {k: naive_epoch / t["full_epoch_train_s"] for k, t in trainings.items()}
    amp = get(sections, "amp", "result", "runs")
    if amp:
        out["autocast"] = {p: ("error" not in r and bool(r.get("finite"))) for p, r in amp.items()}
    ddp = sections.get("ddp", {})
    out["ddp"] = ddp.get("status") if ddp.get("status") != "skipped" else f"skipped: {ddp.get('reason')}"
    compiled = get(sections, "compile", "result", "batches")
    if compiled:
        out["compile"] = {b: {"ratio_vs_naive": get(r, "train", "tf", r["settings"]["variants"][0]["name"],
                                                    "ratio_vs_naive"),
                              "wall_s_with_compilation": r.get("wall_s_with_compilation")}
                          for b, r in compiled.items()}
    return out


def bench_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| variant | frames/s | step s | vs naive | GFLOP/s | share of bf16 peak | peak GPU/RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        share = f"{100 * r['share_of_bf16_peak']:.1f} %" if r["share_of_bf16_peak"] is not None else "n/a"
        lines.append(f"| {r['name']} | {fmt(r['frames_per_s'])} | {fmt(r['step_s'])} | "
                     f"{fmt(r['ratio_vs_naive'], '.2f', 'x')} | {fmt(r['gflop_per_s'])} | {share} | "
                     f"{fmt(r['peak_mem_mb'], '.0f')} |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    sections = results.get("sections", {})
    summary = results.get("summary") or headline(sections, get(results, "check", "plan") or {})
    peak = get(sections, "peak", "result") or {}
    env = peak.get("env") or {}
    check = results.get("check", {})
    lines = ["# lab4 gpucheck", "",
             f"`{check.get('command', 'python -m lab4 gpucheck')}`, started {check.get('started', '?')}, "
             f"{fmt(check.get('seconds'), '.0f', ' s') if check.get('seconds') else 'still running'} "
             f"of a {fmt(check.get('budget_s'), '.0f')} s budget.", "",
             f"Device: {fmt(summary.get('device_name'))} ({fmt(summary.get('device'))}); torch {fmt(env.get('torch'))}, "
             f"CUDA {fmt(env.get('cuda'))}; {fmt(peak.get('cuda_devices'))} CUDA device(s); packages present: "
             + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in (env.get("packages") or {}).items()), ""]
    lines += ["## Sections", "", "| section | status | seconds | note |", "|---|---|---|---|"]
    for name, s in sections.items():
        note = s.get("reason") or (s.get("error") or "").strip().splitlines()[-1:] or [""]
        note = note if isinstance(note, str) else note[0]
        lines.append(f"| {name} | {s.get('status')} | {fmt(s.get('seconds'), '.1f')} | {note.replace('|', '/')} |")
    if peak.get("matmul_tflops"):
        lines += ["", "## Peak", "",
                  f"Matmul {peak.get('matmul_size')}x{peak.get('matmul_size')}: "
                  + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in peak["matmul_tflops"].items())
                  + " (fp32 with TF32 off)."]
        if peak.get("probe_conv_gflops"):
            lines.append("The bench's probe convolution (192 -> 192 channels, 3x3, batch 8, 32x64): "
                         + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak["probe_conv_gflops"].items()) + ".")
    if summary.get("bench_batch_2"):
        lines += ["", "## Training step, batch 2 (the template's), teacher forced", ""]
        lines += bench_table(summary["bench_batch_2"])
        if summary.get("rollout_ratios"):
            lines += ["", "630-frame rollouts of 5 sequences, batched, against the naive loop one after another: "
                      + ", ".join(f"{k} {fmt(v, '.2f', 'x')}" for k, v in summary["rollout_ratios"].items())]
    for batch, rows in (summary.get("bench_batches") or {}).items():
        lines += ["", f"## Training step, batch {batch}", ""] + bench_table(rows)
    if summary.get("epochs"):
        lines += ["", "## Short trainings", "",
                  f"Target: one epoch of lab-size data in {EPOCH_TARGET_S:.0f} s or less.", "",
                  "| run | batch | lr | autocast | epoch train s | how | meets 10 s | val PSNR | baseline PSNR |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key, t in summary["epochs"].items():
            lines.append(f"| {key} | {t['batch']} | {fmt(t['lr'], '.3g')}{' (' + t['lr_rule'] + ')' if t['lr_rule'] else ''}"
                         f" | {t['amp']} | {fmt(t['full_epoch_train_s'], '.1f')} | {t['full_epoch_train_s_kind']} | "
                         f"{fmt(t['meets_10s_target'])} | {fmt(t['val_psnr'], '.2f')} | {fmt(t['baseline_psnr'], '.2f')} |")
        if summary.get("naive_epoch_train_s"):
            lines += ["", f"The naive loop's epoch: {summary['naive_epoch_train_s']:.1f} s "
                      f"({summary['naive_epoch_train_s_kind']}); ours against it: "
                      + ", ".join(f"{k} {v:.1f}x" for k, v in summary["epoch_speedup_vs_naive"].items())]
        lines += ["", "Val PSNR after these few steps says the path works, not how well a full run trains."]
    lines += ["", "## Autocast, DDP, compile", "",
              "Autocast (a short epoch each, finite loss and val PSNR): "
              + (", ".join(f"{p} {'ok' if ok else 'FAILED'}" for p, ok in summary["autocast"].items())
                 if summary.get("autocast") else "n/a"),
              "", f"DDP, 2 processes: {fmt(summary.get('ddp'))}", ""]
    if summary.get("compile"):
        lines.append("torch.compile, bf16 step: " + ", ".join(
            f"batch {b} {fmt(c['ratio_vs_naive'], '.2f', 'x')} the naive loop "
            f"(the bench run took {fmt(c['wall_s_with_compilation'], '.0f')} s with its compilation)"
            for b, c in summary["compile"].items()))
    else:
        lines.append(f"torch.compile: {sections.get('compile', {}).get('status', 'n/a')}")
    notes = [f"{name}: {n}" for name, s in sections.items() for n in s.get("notes") or []]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
