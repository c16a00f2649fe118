"""The repository stands alone: no link in its Markdown leaves it or points at nothing."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from server.settings import PROJECT_ROOT
from tests.docs.markdown import anchors, link_targets, project_files

# Links with a scheme point at the public web (library documentation, standards), not into the
# repository: they are allowed. Every other link is a path in the repository.
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# The public contract lived outside the repository, in the team's shared folder, before docs/
# carried it: no file may send a reader there for it.
OUTSIDE_DOCUMENTS = ("CONTRACT.md",)
TEXT_SUFFIXES = (
    ".md",
    ".py",
    ".graphql",
    ".json",
    ".ts",
    ".mjs",
    ".js",
    ".sql",
    ".html",
    ".toml",
    ".yml",
    ".yaml",
)


def broken_links(path: Path) -> list[str]:
    """What is wrong with each relative link of one Markdown file."""
    problems: list[str] = []
    text = path.read_text()
    for target in link_targets(text):
        if _SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(PROJECT_ROOT)}: {target}"
        if not resolved.is_relative_to(PROJECT_ROOT):
            problems.append(f"{where} points outside the repository")
        elif not resolved.exists():
            problems.append(f"{where} points at a file that does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            problems.append(f"{where} points at a heading that does not exist")
    return problems


def test_every_relative_link_in_the_repository_points_at_a_file_and_heading_inside_it() -> None:
    pages = list(project_files(".md"))
    assert PROJECT_ROOT / "README.md" in pages
    assert PROJECT_ROOT / "docs" / "DATABASE.md" in pages

    problems = [problem for page in pages for problem in broken_links(page)]

    assert problems == []


def test_no_file_of_the_repository_names_a_document_outside_it() -> None:
    mentions = [
        f"{path.relative_to(PROJECT_ROOT)}: {needle}"
        for suffix in TEXT_SUFFIXES
        for path in project_files(suffix)
        if path != Path(__file__)
        for needle in OUTSIDE_DOCUMENTS
        if needle in path.read_text(errors="replace")
    ]

    assert mentions == []


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        ("[contract](../shared/CONTRACT.md)", "points outside the repository"),
        ("[missing](docs/NOPE.md)", "does not exist"),
        ("[heading](docs/DATABASE.md#no-such-heading)", "heading that does not exist"),
    ],
)
def test_the_link_check_reports_links_out_of_the_repository_and_to_nothing(
    tmp_path: Path, link: str, problem: str
) -> None:
    page = PROJECT_ROOT / f"link-check-{tmp_path.name}.md"
    page.write_text(f"See {link} and [fine](docs/DATABASE.md#tables), `[code](../x)`.\n")
    try:
        problems = broken_links(page)
    finally:
        page.unlink()

    assert len(problems) == 1
    assert problem in problems[0]
