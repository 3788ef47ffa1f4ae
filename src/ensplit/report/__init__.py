"""Reports: one function per figure (matplotlib), assembled into one self-contained HTML page."""

from ensplit.report.html import Section, render_page, write_report

__all__ = ["Section", "render_page", "write_report"]
