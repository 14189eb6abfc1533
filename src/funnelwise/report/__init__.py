"""The self-contained HTML report: every analysis rendered, nothing computed.

import funnelwise as fw
from funnelwise.report import write_report
write_report(fw.open("demo"), "demo/report.html")
"""

from funnelwise.report.build import Report, build_report, write_report

__all__ = ["Report", "build_report", "write_report"]
