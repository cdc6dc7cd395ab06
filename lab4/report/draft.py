"""The report draft in Typst: report/results.typ, rewritten on every `python -m lab4 report` with the
sweep's figures, tables, numbers and quoted code; report/report.typ, the student's text, created
once from lab4.report.template and never overwritten; report/report.pdf, compiled from it by the
`typst` package (its compiler and fonts ship in the wheel: no LaTeX, no download)."""

from __future__ import annotations

import datetime as _dt
import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lab4.io import atomic_path, atomic_write_text
from lab4.report import typ
from lab4.report.book import CAPTIONS_FILE, FIGURE_NAMES, ReportBook
from lab4.report.template import REPORT_TEMPLATE
from lab4.report.values import (METRICS, MODEL_METRICS, Quote, RunNumbers, mean_sd, quotes, run_numbers,
                                setting_text, split_settings)
from lab4.runs.results import load_sweep
from lab4.workspace import display_path

REPORT_SOURCE = "report.typ"
RESULTS_SOURCE = "results.typ"
DRAFT_PDF = "report.pdf"
# The figures results.typ shows (the results table is a Typst table instead of its picture).
DRAFT_FIGURES = tuple(name for name in FIGURE_NAMES if name != "fig6_results_table")
RESULTS_LABEL = "lab4-results"  # the metadata that holds every value, for `typst query` and the tests
MAX_FIGURE_HEIGHT = 7.0  # inches: a figure and its caption fit an A4 page


class DraftError(ValueError):
    """The draft could not be written or compiled; the message is one line naming the file."""


@dataclass
class Draft:
    report: Path        # report.typ, the student's
    results: Path       # results.typ, generated
    pdf: Path | None    # report.pdf, when compiled
    created: bool       # whether report.typ was created by this call
    missing_figures: list[str]


def figure_variable(name: str) -> str:
    """fig1_teacher_forcing -> fig_teacher_forcing: the name stays when the figures are renumbered."""
    return re.sub(r"^fig\d+[a-z]?_", "fig_", name)


# Functions results.typ defines for report.typ: fixed-decimal numbers, a figure that is not there yet.
PRELUDE = """\
// fmt(x): x with `digits` decimals (Typst would print 6.4 for 6.40); "n/a" for none.
#let fmt(x, digits: 2) = if x == none { "n/a" } else {
  let s = str(calc.round(x, digits: digits))
  let parts = s.split(".")
  let frac = if parts.len() > 1 { parts.at(1) } else { "" }
  parts.at(0) + if digits > 0 { "." + frac + "0" * (digits - frac.len()) } else { "" }
}
#let missing(message) = block(width: 100%, inset: 10pt, stroke: (paint: luma(150), dash: "dashed"),
  text(size: 9pt, fill: luma(90), message))
#let table_figure(body, caption) = figure(body, caption: caption, kind: table)
"""


def natural_width(png: Path, max_height: float = MAX_FIGURE_HEIGHT) -> float | None:
    """The width in inches to show a figure at: as matplotlib drew it (never enlarged, which would
    blow its lettering up), narrower if it would be taller than `max_height`; None without its PNG."""
    try:
        from PIL import Image

        with Image.open(png) as image:
            dpi = float((image.info.get("dpi") or (150.0,))[0]) or 150.0
            width, height = image.size[0] / dpi, image.size[1] / dpi
    except (OSError, ValueError):
        return None
    return round(min(width, max_height * width / height), 2)


def figure_source(name: str, figures_dir: Path, report_dir: Path, captions: dict[str, str]) -> str | None:
    """`figure(image(...), caption: ...)` for a figure in figures_dir (the vector PDF, else the PNG), at
    most the text's width; None when it is not there."""
    for ext in ("pdf", "png"):
        path = figures_dir / f"{name}.{ext}"
        if path.is_file():
            relative = Path(os.path.relpath(path.resolve(), report_dir.resolve())).as_posix()
            caption = captions.get(name) or f"{name}: no caption saved (figures from an older lab4)"
            inches = natural_width(figures_dir / f"{name}.png")
            width = "size.width" if inches is None else f"calc.min({inches}in, size.width)"
            return (f"figure(layout(size => image({typ.string(relative)}, width: {width})), "
                    f"caption: {typ.string(caption)})")
    return None


def code_source(q: Quote) -> str:
    """The quoted function as a listing: left-aligned on a full-width grey block, its file and lines beneath."""
    return (f"figure(block(width: 100%, fill: luma(246), inset: 6pt, radius: 2pt, align(left, raw(block: true, "
            f"lang: \"python\", code_{q.name}_text))), kind: raw, supplement: \"Listing\", "
            f"caption: {typ.string(f'{q.name} in {q.where}, as the report was built')})")


def results_tables(runs: list[RunNumbers], val_note: str, what_ran: str) -> list[str]:
    """The Typst lines of the results table, the test table and the strategies table."""
    val = ["val_psnr", "baseline_psnr", "val_psnr_1_600", "baseline_psnr_1_600", "val_ssim", "baseline_ssim",
           "best_val_psnr"]
    headers = {"val_psnr": "val PSNR\nall frames", "baseline_psnr": "baseline\nall frames",
               "val_psnr_1_600": "val PSNR\nframes 1-600", "baseline_psnr_1_600": "baseline\nframes 1-600",
               "val_ssim": "val\nSSIM", "baseline_ssim": "baseline\nSSIM", "best_val_psnr": "best epoch\nval PSNR",
               "test_psnr": "test\nPSNR", "test_baseline_psnr": "baseline\nPSNR", "test_ssim": "test\nSSIM",
               "test_baseline_ssim": "baseline\nSSIM"}
    rows = [[r.label, str(r.n)] + [r.cell(m) for m in val] for r in runs]
    caption = ("Validation results: PSNR (dB) of the last validation rollout over all predicted frames and over "
               "frames 1-600 (Kaggle's window), SSIM, and the best validation's mean, beside the repeat-first-frame "
               "baseline on the same frames; mean ± sample sd over the n seeds (no ± for one seed). "
               f"{val_note} {what_ran}")
    lines = [typ.let("results_table", "table_figure(" + typ.table(["run", "n"] + [headers[m] for m in val], rows,
                                                                    columns="(1fr,) + (auto,) * 8")
                     + f", {typ.string(caption)})")]
    test = ["test_psnr", "test_baseline_psnr", "test_ssim", "test_baseline_ssim"]
    if any(r.values["test_psnr"] is not None for r in runs):
        rows = [[r.label, str(r.n)] + [r.cell(m) for m in test] for r in runs]
        caption = ("Test sequences, scored as Kaggle scores (PSNR at data range 255 over the scored frames of "
                   f"every sequence), beside the repeat-first-frame baseline; mean ± sd over seeds. {what_ran}")
        body = typ.table(["run", "n"] + [headers[m] for m in test], rows, columns="(1fr,) + (auto,) * 5")
        lines.append(typ.let("test_table", f"table_figure({body}, {typ.string(caption)})"))
    else:
        lines.append(typ.let("test_table", "missing(" + typ.string(
            "No test score: this data has no test ground truth (the real data's test set is scored by Kaggle: "
            "python -m lab4 predict RUN writes the submission).") + ")"))
    ranked = [r for r in runs if r.strategy]
    if ranked:
        ranked.sort(key=lambda r: -(r.strategy["mean"] or 0))
        rows = []
        for r in ranked:
            s = r.strategy
            interval = "n/a" if s["low"] is None else f"{s['low']:.2f} to {s['high']:.2f}"
            rows.append([r.label, mean_sd(s["mean"], s["std"], 2), str(s["n"]), interval, f"{s['margin']:+.2f}",
                         "yes" if s["beats_reference"] else "no"])
        reference = runs_label(runs, ranked[0].strategy["reference"])
        caption = (f"Each training strategy against the reference ({reference}): final validation PSNR (dB), "
                   "mean ± sd over seeds, its 95 % Student-t interval, the margin over the reference's mean, and "
                   f"whether it beats the reference by more than the seed spread. {what_ran}")
        body = typ.table(["setting", "final val PSNR", "n", "95 % interval", "margin", "beats it"], rows,
                         columns="(1fr,) + (auto,) * 5")
        lines.append(typ.let("strategies_table", f"table_figure({body}, {typ.string(caption)})"))
    else:
        lines.append(typ.let("strategies_table", "missing(" + typ.string(
            "This sweep has no strategies group: run python -m lab4 sweep strategies-studio, then "
            "python -m lab4 report runs/strategies-studio, for this table.") + ")"))
    return lines


def runs_label(runs: list[RunNumbers], base: str) -> str:
    return next((r.label for r in runs if r.base == base), base)


def settings_tables(runs: list[RunNumbers], what_ran: str) -> list[str]:
    """The settings every run shared, and per run the ones the plan varied, with the schedules in the
    summary's words (in the shared table when every run had the same)."""
    shared, varied = split_settings(runs)
    items = [(name, setting_text(value)) for name, value in shared.items()]
    same_schedules = len({r.settings for r in runs}) == 1
    half = (len(items) + 1) // 2
    rows = [[*a, *(b or ("", ""))] for a, b in zip(items[:half], items[half:] + [None])]
    if same_schedules:
        rows.append(["schedules", runs[0].settings, "", ""])
    caption = f"The settings every run of the sweep shared (lab4's config fields; docs/config.md). {what_ran}"
    body = typ.table(["setting", "value", "setting", "value"], rows, align=["left"] * 4,
                     columns="(auto, 1fr, auto, 1fr)")
    lines = [typ.let("settings_table", f"table_figure({body}, {typ.string(caption)})")]
    header = ["run", "seeds"] + varied + ([] if same_schedules else ["schedules"])
    rows = [[r.label, ", ".join(map(str, r.seeds))] + [setting_text(r.config.get(f)) for f in varied]
            + ([] if same_schedules else [r.settings]) for r in runs]
    caption = ("What each run of the sweep set: the fields that differ between runs"
               + ("" if same_schedules else ", and its schedules in words (teacher-forcing ratio and KL weight "
                                            "over training)") + ". " + what_ran)
    columns = f"(1fr,) + (auto,) * {1 + len(varied)}" + ("" if same_schedules else " + (1.2fr,)")
    body = typ.table(header, rows, align=["left"] * len(header), columns=columns)
    lines.append(typ.let("schedule_table", f"table_figure({body}, {typ.string(caption)})"))
    return lines


def run_lines(r: RunNumbers) -> list[str]:
    """One run's dictionary and its flat names: <run>_<metric>, <run>_<metric>_sd, <run>_<metric>_text."""
    rid = typ.identifier(r.base)
    record = {"label": r.label, "runs": r.runs, "seeds": r.seeds, "n": r.n, "data": r.data, "style": r.style,
              "settings": r.settings, **r.values, **{f"{k}_sd": v for k, v in r.sd.items()},
              "text": {m: r.text(m) for m in MODEL_METRICS}, "config": r.config, "strategy": r.strategy}
    lines = [f"// {r.label}: {r.settings}", typ.let(rid, typ.value(record, multiline=True))]
    for metric in METRICS:
        lines.append(typ.let(f"{rid}_{metric}", f"{rid}.{metric}"))
        lines.append(typ.let(f"{rid}_{metric}_sd", f"{rid}.{metric}_sd"))
    for metric in MODEL_METRICS:
        lines.append(typ.let(f"{rid}_{metric}_text", f"{rid}.text.{metric}"))
    if r.strategy:
        lines.append(typ.let(f"{rid}_margin", f"{rid}.strategy.margin"))
    return lines


def values_table(runs: list[RunNumbers]) -> str:
    """The appendix: every run's model numbers by name, with their baselines by name."""
    rows = []
    for r in runs:
        rid = typ.identifier(r.base)
        for metric in MODEL_METRICS:
            baseline = METRICS[metric][1]
            rows.append([f"#{rid}_{metric}", r.cell(metric), f"#{rid}_{baseline}", r.cell(baseline)])
    caption = ("The name of every number of the sweep, as results.typ defines it, with its current value; each "
               "also as <name>_sd (the sd over seeds, none for one) and <name>_text (the value with its seeds, "
               "data and baseline), and every run as one dictionary (#kl_none.seeds, #kl_none.config.tfr, ...).")
    body = typ.table(["value", "now", "its baseline", "now"], rows, align=["left", "right", "left", "right"],
                     columns="(auto, auto, auto, auto)")
    return typ.let("values_table", f"table_figure({body}, {typ.string(caption)})")


def results_source(book: ReportBook, figures_dir: Path, report_dir: Path) -> tuple[str, list[str]]:
    """The text of results.typ, and the figures it could not find in figures_dir."""
    sweep = book.sweep
    runs = run_numbers(book)
    what_ran, val_note = book.what_ran(), book.val_measure()
    captions = read_captions(figures_dir)
    built = _dt.datetime.now().isoformat(timespec="seconds")
    lines = [f"// Written by `python -m lab4 report` from {display_path(sweep.root)} on {built}: rewritten on",
             "// every report, do not edit. Your text goes in report.typ, which imports this file.", "",
             PRELUDE, "// --- What ran " + "-" * 80]
    info = {"name": sweep.name, "folder": display_path(sweep.root), "described": sweep.describe(),
            "what_ran": what_ran, "val_measure": val_note, "seeds_text": book.seeds_text(), "built": built}
    lines += [typ.let("sweep", typ.value(info, multiline=True))] + [typ.let(f"sweep_{k}", f"sweep.{k}") for k in info]
    lines += ["", "// --- Numbers: per plan run, the results table's (mean and sd over seeds) " + "-" * 20]
    for r in runs:
        lines += run_lines(r) + [""]
    lines += ["// --- Tables " + "-" * 80, *results_tables(runs, val_note, what_ran), *settings_tables(runs, what_ran),
              values_table(runs), "", "// --- Figures (" + display_path(figures_dir) + ") " + "-" * 60]
    absent = []
    strategies = bool(sweep.runs_in_group("strategies"))
    for name in DRAFT_FIGURES:
        source = figure_source(name, figures_dir, report_dir, captions)
        if source is None and name == "fig7_training_strategies" and not strategies:
            source = "missing(" + typ.string(f"This sweep has no strategies group: run python -m lab4 sweep "
                                             "strategies-studio, then report on runs/strategies-studio, for this "
                                             "figure.") + ")"
        elif source is None:
            absent.append(name)
            source = "missing(" + typ.string(f"{name} is not in {display_path(figures_dir)}/: `python -m lab4 report` "
                                             "(without --draft-only) draws it") + ")"
        lines.append(typ.let(figure_variable(name), source))
    lines += ["", "// --- The project's code, read from its source when the report was built " + "-" * 20]
    code = quotes()
    for q in code:
        lines += [typ.let(f"code_{q.name}_text", typ.string(q.text)), typ.let(f"code_{q.name}", code_source(q))]
    everything = {"sweep": info, "runs": {r.base: {"n": r.n, "seeds": r.seeds, "data": r.data, "style": r.style,
                                                   **r.values, **{f"{k}_sd": v for k, v in r.sd.items()}}
                                          for r in runs},
                  "code": {q.name: q.text for q in code}, "missing_figures": absent}
    lines += ["", f"#metadata({typ.value(everything)}) <{RESULTS_LABEL}>", ""]
    return "\n".join(lines), absent


def read_captions(figures_dir: Path) -> dict[str, str]:
    import json

    try:
        captions = json.loads((figures_dir / CAPTIONS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in captions.items()} if isinstance(captions, dict) else {}


def create_once(path: Path, text: str) -> bool:
    """Write `path` only if it does not exist, in one step (a hard link to a finished file), so that
    the user's file is never replaced, not even by two reports at once. True when it was created."""
    if path.exists():
        return False
    scratch = path.with_name(f".{path.name}.new")
    atomic_write_text(scratch, text)
    try:
        os.link(scratch, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # a file system without hard links
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK) or path.exists():
            raise
        os.replace(scratch, path)
        return True
    finally:
        scratch.unlink(missing_ok=True)


def compile_root(*paths: Path) -> Path:
    """The folder Typst may read from: the one holding the report and the figures."""
    return Path(os.path.commonpath([str(p.resolve()) for p in paths]))


def compile_pdf(source: Path, pdf: Path, root: Path) -> Path:
    """Compile `source` into `pdf` (written atomically) with the fonts the typst wheel embeds, the same
    on every machine; a Typst error becomes one line with the file and line."""
    try:
        import typst
    except ImportError as exc:
        raise DraftError(f"{display_path(source)}: cannot compile it: the typst package is missing "
                         "(pip install typst, or make setup)") from exc
    try:
        data = typst.compile(str(source), root=str(root), ignore_system_fonts=True)
    except typst.TypstError as exc:
        where = re.search(r"┌─ (\S+?):(\d+):(\d+)", getattr(exc, "diagnostic", "") or "")
        at = f"{display_path(Path(where.group(1)).resolve())} line {where.group(2)}: " if where else ""
        hint = ""
        if "unknown variable" in str(exc):
            hint = " (results.typ defines the names of the sweep it was built from; its appendix lists them)"
        message = " ".join(str(exc).split())  # one line, whatever Typst says
        raise DraftError(f"{display_path(source)}: typst could not compile it: {at}{message}{hint}") from exc
    with atomic_path(pdf) as tmp:
        tmp.write_bytes(data)
    return pdf


def write_draft(sweep_dir: Path, figures_dir: Path, report_dir: Path, make_pdf: bool = True) -> Draft:
    """results.typ from the sweep and the figures in figures_dir, report.typ when there is none, and
    report.pdf compiled from report.typ."""
    book = ReportBook(load_sweep(sweep_dir))
    report_dir.mkdir(parents=True, exist_ok=True)
    text, absent = results_source(book, figures_dir, report_dir)
    results = report_dir / RESULTS_SOURCE
    atomic_write_text(results, text)
    report = report_dir / REPORT_SOURCE
    created = create_once(report, REPORT_TEMPLATE)
    pdf = compile_pdf(report, report_dir / DRAFT_PDF, compile_root(report_dir, figures_dir)) if make_pdf else None
    return Draft(report=report, results=results, pdf=pdf, created=created, missing_figures=absent)
