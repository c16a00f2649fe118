"""A database URL's password, kept out of process arguments and messages.

Any local user can read every process's arguments (`ps`, /proc/*/cmdline), so a URL handed to a
child process on its command line shows its password to all of them. Children get it from their
environment instead (dbmate's DATABASE_URL, libpq's PGPASSWORD), and messages show the URL
without it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def without_password(url: str) -> str:
    """The same URL with no password in it (user, host, port, database and query kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def password(url: str) -> str | None:
    """The URL's password, decoded, if it has one."""
    secret = urlsplit(url).password
    return None if secret is None else unquote(secret)
