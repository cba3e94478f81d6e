"""The documents are an entry point and a map, not a notebook: the README stays short, every
file a document, a comment or a config names exists in the repository, and nothing cites a
document users do not have."""

import re
import subprocess

import pytest

from tests.shared import REPO

README_LINES = 250
TOP = ("config", "docs", "src", "tests", "workflow", "benchmarks", "profiles", "envs", "constraints", ".ci", ".dvc")
NAMED = re.compile(rf"(?<![\w./-])((?:{'|'.join(re.escape(t) for t in TOP)})/[\w./-]*[\w/])")
"""A path into one of the repository's folders, as a document or a comment names it."""
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
"""The target of a Markdown link."""
ABSENT = ("PAPER.md", "STYLE.md")
"""Documents that exist beside the repository on the machines it is developed on, not in it."""


def tracked_text() -> list:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    kinds = (".md", ".py", ".yaml", ".yml", ".smk", ".toml", ".rst", ".txt", ".cfg")
    this = "tests/test_documents.py"  # names absent files on purpose, to show they are found
    return [REPO / f for f in files if (f.endswith(kinds) or f in ("Makefile", "Snakefile", ".ci/run")) and f != this]


def named_paths(text: str) -> set[str]:
    """Repository paths `text` names, patterns and placeholders (`<task>`, `{seed}`, `*`) left out."""
    return {path.rstrip(".") for path in NAMED.findall(text) if not re.search(r"[<>{}*]", path)}


def test_the_readme_is_an_entry_point_of_at_most_250_lines():
    assert len((REPO / "README.md").read_text().splitlines()) <= README_LINES


@pytest.mark.parametrize("path", tracked_text(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_a_text_names_exists_and_no_absent_document_is_cited(path):
    text = path.read_text()
    missing = sorted(p for p in named_paths(text) if not (REPO / p).exists())
    if path.suffix == ".md":
        missing += sorted(
            target
            for target in LINK.findall(text)
            if not target.startswith(("http:", "https:", "mailto:")) and not (path.parent / target).exists()
        )
    assert missing == []
    assert [name for name in ABSENT if name in text] == []


def test_a_path_that_does_not_exist_is_found():
    assert named_paths("see docs/nowhere.md, config/README.md and results/{model}/x") == {
        "docs/nowhere.md",
        "config/README.md",
    }
    assert not (REPO / "docs" / "nowhere.md").exists()
