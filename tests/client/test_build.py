"""The client's build takes its types from the contract: a change there that the client's code
does not follow fails the build (and so `make install` and the client's tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from server.settings import PROJECT_ROOT
from tests.client.build import CLIENT_DIR, node

CONTRACT_DIR = PROJECT_ROOT / "contract"


def copy_of_the_project(into: Path) -> Path:
    """client/ and contract/ side by side, as in the repository, sharing node_modules."""
    shutil.copytree(CLIENT_DIR, into / "client", ignore=shutil.ignore_patterns("dist", "contract"))
    shutil.copytree(CONTRACT_DIR, into / "contract")
    (into / "node_modules").symlink_to(PROJECT_ROOT / "node_modules")
    return into


def build(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), "client/scripts/build.mjs"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_event_field_the_client_reads_removed_from_the_contract_fails_its_build(
    tmp_path: Path,
) -> None:
    project = copy_of_the_project(tmp_path)
    first = build(project)
    assert first.returncode == 0, first.stdout + first.stderr  # the copy itself builds

    events = project / "contract" / "generated" / "socket-events.ts"
    text = events.read_text()
    assert text.count("  cursor: string;\n") == 1
    events.write_text(text.replace("  cursor: string;\n", ""))

    result = build(project)
    assert result.returncode != 0
    assert "cursor" in result.stdout + result.stderr
    assert not (project / "client" / "dist" / ".built").exists()
