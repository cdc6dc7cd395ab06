"""The report: the figures of a sweep with their captions, saved as PDF + PNG under
stable names, and figures/report.pdf (matplotlib PdfPages; no LaTeX, no browser).

`ReportBook` is what the analysis notebook calls, one figure per cell; `python -m lab4
report` (what `make report` calls) executes that notebook headless with papermill on the
latest sweep, so the notebook and the report cannot drift apart.

The same command then writes the report draft in Typst (report/report.typ, the student's, created
once; report/results.typ, rewritten each time) and compiles it to report/report.pdf.

book: ReportBook and the report's file names; pdf: report.pdf; command: `python -m lab4 report` and `table`;
draft: the Typst draft and its compilation; values: its numbers and quoted code; template: the starter
report.typ; typ: Python values as Typst source. What they draw on: figures (pandas tables in, matplotlib
Figures out), tables (the numbers as tables), stats (mean, sd and 95 % interval over seeds), scrubber (the
notebook's frame scrubber); and two analyses of a trained run: zsampling (`python -m lab4 strategies`) and
labelnorm (`python -m lab4 label-norm`).
"""

from lab4.report.book import CAPTIONS_FILE, FIGURE_NAMES, README_FIGURE, REPORT_FILE, TABLE_FILE, ReportBook
from lab4.report.command import ANALYSIS_NOTEBOOK, cmd_report, cmd_table, results_markdown, run_analysis
from lab4.report.draft import DraftError, write_draft

__all__ = ["ANALYSIS_NOTEBOOK", "CAPTIONS_FILE", "FIGURE_NAMES", "README_FIGURE", "REPORT_FILE", "TABLE_FILE",
           "DraftError", "ReportBook", "cmd_report", "cmd_table", "results_markdown", "run_analysis", "write_draft"]
