"""figures/report.pdf: a title page, then every figure of a ReportBook with its caption below
it (matplotlib PdfPages; no LaTeX, no browser)."""

from __future__ import annotations

import datetime as _dt
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from lab4.runs.results import SweepData


def write_pdf(path: Path, sweep: SweepData, items: dict[str, tuple[Figure, str]], order: Sequence[str]) -> Path:
    """The title page, then the figures in `order` (any others after them), each with its caption."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path, metadata={"Title": f"Lab 4 ablation report: {sweep.name}", "Creator": "lab4.report"}) as pdf:
        pdf.savefig(title_page(sweep))
        for name in [n for n in order if n in items] + [n for n in items if n not in order]:
            fig, caption = items[name]
            with _captioned(fig, caption):
                pdf.savefig(fig)
    return path


def title_page(sweep: SweepData) -> Figure:
    """The report's first page: what the sweep ran, where, and for how long."""
    info = sweep.info
    fig = Figure(figsize=(11.69, 8.27))
    fig.text(0.06, 0.92, "Conditional VAE for video prediction: ablation report", fontsize=20, weight="bold")
    fig.text(0.06, 0.875, sweep.describe(), fontsize=11)
    lines = []
    if info.get("description"):
        lines += textwrap.wrap(str(info["description"]), 120) + [""]
    lines += [
        f"plan: {info.get('plan', '?')}",
        f"sweep started: {info.get('started', '?')}, last run: {info.get('updated', '?')}, "
        f"report built: {_dt.datetime.now().isoformat(timespec='seconds')}",
        f"machine: {info.get('host', '?')}, {info.get('cpus', '?')} CPU cores, "
        f"GPUs: {', '.join(map(str, info.get('gpus') or [])) or 'none'}; {info.get('jobs', 1)} run(s) at a time",
        f"settings varied by the plan: {', '.join(info.get('varied') or []) or '-'}",
        "",
        "runs:",
    ]
    df = sweep.summary
    for _, row in df.iterrows():
        minutes = row.get("run_seconds", np.nan)
        time_text = f"{minutes / 60:.1f} min" if pd.notna(minutes) else "?"
        lines.append(f"  {row['run']:<22} [{row.get('status', '?')}, {time_text}] {row.get('settings', '')}")
    total = pd.to_numeric(df.get("run_seconds", pd.Series(dtype=float)), errors="coerce").sum()
    lines += ["", f"total run time: {total / 60:.1f} min (sum over runs, notebook execution included)"]
    fig.text(0.06, 0.83, "\n".join(lines), fontsize=8.5, va="top", family="monospace")
    fig.text(0.06, 0.04, "Every PSNR in this report is stated with the data it was measured on; the "
             "repeat-first-frame baseline (the given first frame copied to every step) is shown beside the "
             "model everywhere.", fontsize=8.5, style="italic")
    return fig


@contextmanager
def _captioned(fig: Figure, caption: str) -> Iterator[None]:
    """Temporarily grow the figure at the bottom and write the caption there."""
    width, height = fig.get_size_inches()
    lines = textwrap.wrap(caption, max(60, int(width * 17)))
    extra = 0.16 * len(lines) + 0.25
    engine = fig.get_layout_engine()
    fraction = extra / (height + extra)
    moved = []
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, fraction, 1, 1 - fraction))
    else:  # a figure placed by hand: squeeze everything into the top part
        for ax in fig.axes:
            box = ax.get_position()
            moved.append((ax, box))
            ax.set_position((box.x0, fraction + box.y0 * (1 - fraction), box.width, box.height * (1 - fraction)))
        for text in fig.texts:
            x, y = text.get_position()
            moved.append((text, (x, y)))
            text.set_position((x, fraction + y * (1 - fraction)))
    fig.set_size_inches(width, height + extra)
    caption_text = fig.text(0.015, 0.08 / (height + extra), "\n".join(lines), fontsize=8, va="bottom", ha="left")
    try:
        yield
    finally:
        caption_text.remove()
        fig.set_size_inches(width, height)
        if engine is not None and hasattr(engine, "set"):
            engine.set(rect=(0, 0, 1, 1))
        for item, old in moved:
            item.set_position(old)
