"""The report pages a user opens (study, compare, recommend), loaded in headless Chromium: every figure decodes
to a real image and no table is empty. Skipped, with the reason, where no Chromium is installed."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ensplit.cli import main

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get install chromium)")

PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const tables = [...document.querySelectorAll('table')].map(t => t.querySelectorAll('tbody tr').length);
  document.body.setAttribute('data-probe', JSON.stringify({images, tables}));
});
</script>"""
TINY_DATA = ["--train-subset", "300", "--test-subset", "200", "--quiet"]


def probe(page: Path, tmp_path: Path) -> dict:
    """Load `page` (with a probe script appended) in headless Chromium; what the probe saw after `load`."""
    copy = tmp_path / f"probe-{page.parent.name}.html"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
             "--virtual-time-budget=15000", "--dump-dom"]
    run = subprocess.run([BROWSER, *flags, copy.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'data-probe="([^"]*)"', run.stdout)
    assert found, f"the page did not finish loading: {run.stderr[-1000:]}"
    return json.loads(html.unescape(found.group(1)))


def check(page: Path, tmp_path: Path, figures: int) -> None:
    seen = probe(page, tmp_path)
    assert len(seen["images"]) >= figures
    assert all(complete and width > 100 and height > 100 for complete, width, height in seen["images"])
    assert seen["tables"] and all(rows > 0 for rows in seen["tables"])


def test_the_study_page(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--out", str(out), "--widths", "4,8,16", "--epochs", "1", "--pool-min", "4",
                 "--pool-max", "6", "--bootstrap", "3", "--cnll-splits", "2", *TINY_DATA]) == 0
    check(out / "report.html", tmp_path, 7)


def test_the_compare_page(tmp_path):
    out = tmp_path / "compare"
    assert main(["compare", "--out", str(out), "--methods", "single,deep,batchensemble", "--members", "2",
                 "--width", "8", "--epochs", "1", "--sweep-budgets", "0.5,1", "--sweep-members", "2,3",
                 *TINY_DATA]) == 0
    check(out / "report.html", tmp_path, 4)


def test_the_recommend_page(tmp_path):
    out = tmp_path / "recommend"
    assert main(["recommend", "--out", str(out), "--budget", "6k", "--epochs", "2", "--members-max", "3",
                 "--methods", "batchensemble", "--bootstrap", "20", "--cnll-splits", "2", *TINY_DATA]) == 0
    check(out / "report.html", tmp_path, 3)
