"""Just enough Markdown for the documentation tests: headings, links, table rows, GitHub anchors."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from server.settings import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_HTML_LINK = re.compile(r"""\b(?:href|src)=["']([^"']+)["']""")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def project_files(suffix: str) -> Iterator[Path]:
    """Every file of the project whose name ends with `suffix`: what git tracks, and new files
    it does not ignore (installed packages, data, caches and build output are ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    for name in sorted(set(listed.split("\0"))):
        path = PROJECT_ROOT / name
        if name.endswith(suffix) and path.is_file():
            yield path


def without_code(text: str) -> str:
    """The text with fenced blocks and code spans blanked: links inside them are examples."""
    text = _FENCE.sub("", text)
    return _CODE_SPAN.sub("", text)


def link_targets(text: str) -> list[str]:
    prose = without_code(text)
    return [
        *_INLINE_LINK.findall(prose),
        *_REFERENCE_DEFINITION.findall(prose),
        *_HTML_LINK.findall(prose),
    ]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: link text kept, lower case, punctuation dropped, spaces to
    hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line) up to the next heading of its level or
    above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.compile(rf"^#{{1,{level}}}\s", re.MULTILINE).search(text, start)
    return text[start : following.start() if following else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in `text`, header and separator rows left out."""
    rows: list[list[str]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()) or re.fullmatch(
            r"\|(\s*:?-+:?\s*\|)+", following.strip()
        ):
            continue  # a separator, or the header above one
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip() for cell in cells])
    return rows


def code_names(cell: str) -> list[str]:
    """The `code spans` of a cell: the names it lists."""
    return re.findall(r"`([^`]+)`", cell)


def cell_name(cell: str) -> str:
    """The first name a cell lists, or the cell itself when it lists none (a mistake the
    comparison then shows)."""
    names = code_names(cell)
    return names[0] if names else cell
