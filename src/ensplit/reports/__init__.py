"""Reports: one function per figure (matplotlib), assembled into one self-contained HTML page.

(Named `reports`, not `report`, so that importing it never rebinds the front door's `ensplit.report` function.)
"""

from ensplit.reports.html import Section, render_page, write_report

__all__ = ["Section", "render_page", "write_report"]
