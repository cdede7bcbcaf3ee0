"""Reports over run directories: Markdown + HTML with loss, eval and scaling plots.

Entry point: `make_report(run_dirs, out=None) -> ReportResult`. Imports no ML framework;
matplotlib is loaded only when a plot is drawn.
"""

from flanctl.report.build import ReportResult, make_report
from flanctl.report.rundata import RunRecord, read_run

__all__ = ["ReportResult", "RunRecord", "make_report", "read_run"]
