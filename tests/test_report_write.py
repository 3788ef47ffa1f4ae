"""`ensplit.reports.write`: one function writes every experiment's page, chosen by the result's type name."""

import inspect

import pytest

import ensplit
from ensplit import reports
from ensplit.errors import EnsplitError
from ensplit.reports.pages import WRITERS


def test_every_result_the_front_door_returns_has_a_page():
    """The registry names result classes without importing them (reports never import experiments): a renamed
    result class would lose its page, so the names are checked against the front door's return types."""
    returned = {inspect.signature(getattr(ensplit, name)).return_annotation
                for name in ("recommend", "study", "compare", "designspace", "landscape", "collegial", "analyze",
                             "report")}
    assert returned == set(WRITERS)  # `from __future__ import annotations`: the annotations are the names


def test_a_result_without_a_page_is_refused_in_one_line(tmp_path):
    class Unknown:
        report = None

    with pytest.raises(EnsplitError, match="no report page for Unknown; pages exist for AnalyzeResult"):
        reports.write(Unknown(), tmp_path)
    assert not list(tmp_path.iterdir())
