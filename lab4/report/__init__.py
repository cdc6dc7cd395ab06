"""The report: the figures of a sweep with their captions, saved as PDF + PNG under
stable names, and figures/report.pdf (matplotlib PdfPages; no LaTeX, no browser).

`ReportBook` is what the analysis notebook calls, one figure per cell; `python -m lab4
report` (what `make report` calls) executes that notebook headless with papermill on the
latest sweep, so the notebook and the report cannot drift apart.

book: ReportBook and the report's file names; pdf: report.pdf; command: `python -m lab4 report` and `table`.
"""

from lab4.report.book import FIGURE_NAMES, README_FIGURE, REPORT_FILE, TABLE_FILE, ReportBook
from lab4.report.command import ANALYSIS_NOTEBOOK, cmd_report, cmd_table, results_markdown, run_analysis

__all__ = ["ANALYSIS_NOTEBOOK", "FIGURE_NAMES", "README_FIGURE", "REPORT_FILE", "TABLE_FILE", "ReportBook",
           "cmd_report", "cmd_table", "results_markdown", "run_analysis"]
