"""The captions Snakemake's own report (`snakemake --report`) shows are reStructuredText: each
parses without a warning (`|ΔW|` unquoted, say, reads as an undefined substitution)."""

import io

import pytest
from docutils.core import publish_doctree

from tests.shared import REPO

CAPTIONS = sorted((REPO / "workflow" / "report").glob("*.rst"))


def test_every_figure_of_the_report_has_a_caption():
    from esforget.report.page import FIGURES

    assert {p.stem for p in CAPTIONS} >= set(FIGURES) | {"report"}


def rst_warnings(text: str) -> str:
    """What docutils reports (warnings and errors) while parsing `text`, as Snakemake's report does."""
    stream = io.StringIO()
    publish_doctree(text, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream})
    return stream.getvalue()


def test_an_unquoted_bar_is_the_error_this_checks_for():
    assert "Undefined substitution referenced" in rst_warnings("share of entries (|ΔW| ≤ τ)")
    assert rst_warnings("share of entries (``|ΔW| ≤ τ``)") == ""


@pytest.mark.parametrize("caption", CAPTIONS, ids=[p.stem for p in CAPTIONS])
def test_each_caption_parses_without_warnings(caption):
    assert rst_warnings(caption.read_text()) == ""
