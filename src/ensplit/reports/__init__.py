"""Reports: one function per figure (matplotlib), assembled into one self-contained HTML page.

`write(result, folder)` writes the page of an experiment's typed result (the command layer and the front door
call it; experiments write no pages).

(Named `reports`, not `report`, so that importing it never rebinds the front door's `ensplit.report` function.)
"""

from ensplit.reports.html import Section, render_page, write_report
from ensplit.reports.pages import write

__all__ = ["Section", "render_page", "write", "write_report"]
