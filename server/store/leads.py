"""Leads: read, list, write. Their notifications are written by triggers, not here."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from server.db import Connection
from server.store._queries import execute, fetch_all, fetch_one


class LeadRow(TypedDict):
    id: int
    firstName: str
    lastName: str
    email: str | None
    phone: str | None
    company: str | None
    status: str
    score: int
    createdAt: datetime
    updatedAt: datetime


class LeadChanges(TypedDict, total=False):
    """The columns to change; a key that is absent keeps its value, None clears a nullable one."""

    firstName: str
    lastName: str
    email: str | None
    phone: str | None
    company: str | None
    status: str
    score: int


async def lead_by_id(conn: Connection, *, id: int) -> LeadRow | None:
    return cast(LeadRow | None, await fetch_one(conn, "lead_by_id", id=id))


async def leads_by_ids(conn: Connection, *, ids: list[int]) -> list[LeadRow]:
    """The leads that exist among `ids`, in no particular order, in one statement."""
    if not ids:
        return []
    return cast(list[LeadRow], await fetch_all(conn, "lead_by_ids", ids=ids))


async def lead_list(conn: Connection, *, limit: int, offset: int) -> list[LeadRow]:
    return cast(list[LeadRow], await fetch_all(conn, "lead_list", limit=limit, offset=offset))


async def lead_insert(
    conn: Connection,
    *,
    first_name: str,
    last_name: str,
    email: str | None = None,
    phone: str | None = None,
    company: str | None = None,
    status: str | None = None,
    score: int | None = None,
) -> LeadRow:
    """The new lead; `None` status or score takes the column default."""
    row = await fetch_one(
        conn,
        "lead_insert",
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        company=company,
        status=status,
        score=score,
    )
    if row is None:  # INSERT ... RETURNING always returns its row
        raise RuntimeError("lead_insert returned no row")
    return cast(LeadRow, row)


_UPDATABLE = {
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "phone": "phone",
    "company": "company",
    "status": "status",
    "score": "score",
}


async def lead_update(conn: Connection, *, id: int, changes: LeadChanges) -> LeadRow | None:
    """The lead after the change, or None if there is no such lead."""
    params: dict[str, object] = {}
    for column, param in _UPDATABLE.items():
        params[f"set_{param}"] = column in changes
        params[param] = changes.get(column)
    return cast(LeadRow | None, await fetch_one(conn, "lead_update", id=id, **params))


async def lead_delete(conn: Connection, *, id: int) -> bool:
    return await execute(conn, "lead_delete", id=id) > 0
