"""docs/SETTINGS.md against server/settings.py: every variable it reads is documented, and every
documented setting is one it reads (or one the page says another program reads)."""

from __future__ import annotations

import ast
import re

from server.__main__ import MULTIPROC_DIR_ENV
from server.settings import PROJECT_ROOT
from tests.docs.markdown import DOCS, code_names, section, table_rows

SETTINGS_SOURCE = PROJECT_ROOT / "server" / "settings.py"
PAGE = (DOCS / "SETTINGS.md").read_text()
OTHERS_HEADING = "## Read by others"


def variables_read(source: str) -> set[str]:
    """The upper-case names passed to a call (env.get("PORT"), parse_flag("SERVE_UI", ...),
    name="JWT_EXPIRES_IN"): every variable the module reads, since it reads none otherwise."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
                if (
                    isinstance(argument, ast.Constant)
                    and isinstance(argument.value, str)
                    and re.fullmatch(r"[A-Z][A-Z0-9_]+", argument.value)
                ):
                    names.add(argument.value)
    return names


def documented(text: str) -> set[str]:
    return {name for row in table_rows(text) for name in code_names(row[0])}


def test_the_scan_finds_variables_read_in_every_way_settings_py_reads_them() -> None:
    source = 'env.get("PORT"); parse_flag("SERVE_UI", x); parse_duration(t, name="LOG_WINDOW")'

    assert variables_read(source) == {"PORT", "SERVE_UI", "LOG_WINDOW"}


def test_every_variable_settings_py_reads_is_documented() -> None:
    read = variables_read(SETTINGS_SOURCE.read_text())
    own = documented(PAGE.split(OTHERS_HEADING)[0])

    assert len(read) > 20
    assert read - own == set(), "add them to docs/SETTINGS.md"


def test_every_documented_setting_is_read_by_the_server() -> None:
    read = variables_read(SETTINGS_SOURCE.read_text())
    own = documented(PAGE.split(OTHERS_HEADING)[0])

    assert own - read == set(), "docs/SETTINGS.md names settings the server does not read"


def test_the_variables_read_by_others_include_the_metrics_folder_and_the_tests_database() -> None:
    others = documented(section(PAGE, OTHERS_HEADING))

    assert {MULTIPROC_DIR_ENV, "TEST_DATABASE_URL"} <= others
