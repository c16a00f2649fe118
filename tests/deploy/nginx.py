"""nginx as docs/DEPLOYMENT.md configures it, run by a test in a folder of its own.

The configuration is the ```nginx block of the document itself, with only its addresses changed
(the test's upstream ports and listening port), so a change to the document is a change to what
the proxy test runs. The block goes inside an `http {}` of a minimal main file whose paths (pid,
logs, temporary files) all point into the test's folder: the system's nginx, its configuration
and its logs are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.deploy.process import stop_fast
from tests.realtime.harness import PROJECT_ROOT, free_port

DEPLOYMENT_DOC = PROJECT_ROOT / "docs" / "DEPLOYMENT.md"
DOC_UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)127\.0\.0\.1:\d+(\s)", re.MULTILINE)
DOC_LISTEN = re.compile(r"^(\s*)listen 80;", re.MULTILINE)
# What the test reads back: which client address reached which upstream (several, comma-
# separated, when nginx tried one that failed first) and with which status.
ACCESS_LOG_FORMAT = (
    'log_format upstreams \'$remote_addr "$request" $status '
    "upstream=[$upstream_addr] upstream_status=[$upstream_status]';"
)
STARTS_WITHIN = 10.0


def nginx_binary() -> str | None:
    """Debian puts nginx in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def documented_config() -> str:
    """The one ```nginx block of docs/DEPLOYMENT.md, as written there."""
    blocks = re.findall(r"^```nginx\n(.*?)^```", DEPLOYMENT_DOC.read_text(), re.S | re.M)
    if len(blocks) != 1:
        raise AssertionError(
            f"expected one ```nginx block in {DEPLOYMENT_DOC}, found {len(blocks)}"
        )
    return str(blocks[0])


def site_config(upstream_ports: Sequence[int], listen_port: int) -> str:
    """The documented block with its upstream servers on `upstream_ports` and listening on
    127.0.0.1:`listen_port`; fails when the block no longer has the lines this replaces."""
    config = documented_config()
    documented = DOC_UPSTREAM_SERVER.findall(config)
    if len(documented) != len(upstream_ports):
        raise AssertionError(
            f"the documented upstream has {len(documented)} servers on 127.0.0.1; "
            f"the test runs {len(upstream_ports)}"
        )
    ports = iter(upstream_ports)
    config = DOC_UPSTREAM_SERVER.sub(
        lambda m: f"{m.group(1)}127.0.0.1:{next(ports)}{m.group(2)}", config
    )
    config, listens = DOC_LISTEN.subn(rf"\g<1>listen 127.0.0.1:{listen_port};", config)
    if listens != 1:
        raise AssertionError(f"expected one 'listen 80;' in the documented block, found {listens}")
    return config


def main_config(folder: Path, site: str) -> str:
    """A complete nginx.conf around `site` (which belongs inside `http {}`)."""
    # A master running as root starts its workers as `nobody`, who cannot enter pytest's
    # private temporary folder: keep them as the user running the test instead.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {folder / "nginx.pid"};
# warn: "upstream server temporarily disabled" is a warning.
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    {ACCESS_LOG_FORMAT}
    access_log {folder / "access.log"} upstreams;
{temp}

{site}
}}
"""


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")

    def access_log(self) -> list[str]:
        return (self.folder / "access.log").read_text(errors="replace").splitlines()

    def stop(self) -> None:
        """SIGQUIT (graceful) would wait for open WebSockets; SIGTERM is nginx's fast stop."""
        stop_fast(self.process)


def start_nginx(binary: str, folder: Path, upstream_ports: Sequence[int]) -> Nginx:
    """nginx in the foreground with the documented configuration, on a free port."""
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(main_config(folder, site_config(upstream_ports, port)))
    # -p and -e: nginx's prefix and start-up error log, or it reaches for /var/log/nginx.
    arguments = [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)]
    checked = subprocess.run(
        [*arguments, "-t"],
        capture_output=True,
        text=True,
        check=False,
    )
    if checked.returncode != 0:
        raise AssertionError(f"nginx -t refused the documented configuration:\n{checked.stderr}")
    with (folder / "nginx.out").open("wb") as out:
        process = subprocess.Popen(
            [*arguments, "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    nginx = Nginx(process, port, folder)
    deadline = time.monotonic() + STARTS_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}:\n{nginx.error_log()}")
        try:
            httpx.get(f"{nginx.url}/healthz", timeout=2.0)
            return nginx
        except httpx.TransportError:
            time.sleep(0.05)
    nginx.stop()
    raise AssertionError(f"nginx not answering within {STARTS_WITHIN}s:\n{nginx.error_log()}")
