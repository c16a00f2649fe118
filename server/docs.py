"""The generated parts of the reference pages, written from the sources of truth.

docs/GRAPHQL.md carries every type, field and argument of server/graphql/schema.graphql (with
the schema's own comments), and docs/EVENTS.md every event and payload field of
contract/socket-events.schema.json. Each page keeps its prose by hand; only the text between
its two markers is generated, so it cannot drift from the schema: `python -m server.docs`
rewrites it, `python -m server.docs --check` fails when a page is stale, and tests/docs/ runs
that check.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    EnumTypeDefinitionNode,
    FieldDefinitionNode,
    InputObjectTypeDefinitionNode,
    InputValueDefinitionNode,
    Node,
    ObjectTypeDefinitionNode,
    ScalarTypeDefinitionNode,
    Token,
    TokenKind,
    TypeDefinitionNode,
    parse,
    print_ast,
)

from server.settings import PROJECT_ROOT

SDL_PATH = PROJECT_ROOT / "server" / "graphql" / "schema.graphql"
EVENTS_SCHEMA_PATH = PROJECT_ROOT / "contract" / "socket-events.schema.json"
GRAPHQL_PAGE = PROJECT_ROOT / "docs" / "GRAPHQL.md"
EVENTS_PAGE = PROJECT_ROOT / "docs" / "EVENTS.md"
END_MARKER = "<!-- END GENERATED -->"


def begin_marker(source: Path) -> str:
    return (
        f"<!-- BEGIN GENERATED from {source.relative_to(PROJECT_ROOT)} by "
        "`python -m server.docs`: edit the source, not this block -->"
    )


class StalePage(Exception):
    """A page's generated block differs from what its source gives, or its markers are missing."""


# --- GraphQL ---------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _comment_before(node: Node) -> str:
    """The `#` lines directly above a definition, each on a line of its own."""
    assert node.loc is not None
    start: Token = node.loc.start_token
    lines: list[str] = []
    token, line = start.prev, start.line
    while (
        token is not None
        and token.kind == TokenKind.COMMENT
        and token.line == line - 1
        and (token.prev is None or token.prev.line != token.line)
    ):
        lines.insert(0, (token.value or "").strip())
        line = token.line
        token = token.prev
    return " ".join(lines)


def _comment_after(node: Node) -> str:
    """The `#` comment that ends the definition's last line, if any."""
    assert node.loc is not None
    end: Token = node.loc.end_token
    following = end.next
    if following is not None and following.kind == TokenKind.COMMENT and following.line == end.line:
        return (following.value or "").strip()
    return ""


def _note(node: Node) -> str:
    return " ".join(part for part in (_comment_before(node), _comment_after(node)) if part)


def _argument(value: InputValueDefinitionNode) -> str:
    text = f"{value.name.value}: {print_ast(value.type)}"
    if value.default_value is not None:
        text += f" = {print_ast(value.default_value)}"
    return text


def _field_table(fields: Sequence[FieldDefinitionNode | InputValueDefinitionNode]) -> list[str]:
    with_arguments = any(isinstance(f, FieldDefinitionNode) and f.arguments for f in fields)
    if with_arguments:
        lines = ["| field | arguments | type | note |", "| --- | --- | --- | --- |"]
    else:
        lines = ["| field | type | note |", "| --- | --- | --- |"]
    for field in fields:
        name = f"`{field.name.value}`"
        kind = f"`{print_ast(field.type)}`"
        note = _cell(_note(field))
        if with_arguments:
            arguments = (
                ", ".join(f"`{_argument(a)}`" for a in field.arguments or ())
                if isinstance(field, FieldDefinitionNode)
                else ""
            )
            lines.append(f"| {name} | {arguments} | {kind} | {note} |")
        else:
            lines.append(f"| {name} | {kind} | {note} |")
    return lines


def _definition_section(definition: TypeDefinitionNode) -> list[str]:
    if isinstance(definition, ObjectTypeDefinitionNode):
        title = "type"
    elif isinstance(definition, InputObjectTypeDefinitionNode):
        title = "input"
    elif isinstance(definition, EnumTypeDefinitionNode):
        title = "enum"
    elif isinstance(definition, ScalarTypeDefinitionNode):
        title = "scalar"
    else:  # the SDL has no other kind today; a new kind must be documented on purpose
        raise StalePage(f"no renderer for {type(definition).__name__} in {SDL_PATH.name}")
    name = definition.name.value
    lines = [f"### {name}", "", f"{title} `{name}`."]
    note = _note(definition)
    if note:
        lines[-1] += f" {note}"
    lines.append("")
    if isinstance(definition, ObjectTypeDefinitionNode | InputObjectTypeDefinitionNode):
        lines += _field_table(list(definition.fields or ()))
    elif isinstance(definition, EnumTypeDefinitionNode):
        lines.append("Values: " + ", ".join(f"`{v.name.value}`" for v in definition.values or ()))
    return [*lines, ""]


ROOT_TYPES = ("Query", "Mutation")


def render_graphql(document: DocumentNode) -> str:
    """Query and Mutation first, then every other type in the order the SDL gives them."""
    named = [d for d in document.definitions if isinstance(d, TypeDefinitionNode)]
    if len(named) != len(document.definitions):
        raise StalePage(f"{SDL_PATH.name} has a definition that is not a type (schema, extension)")
    roots = [d for name in ROOT_TYPES for d in named if d.name.value == name]
    others = [d for d in named if d.name.value not in ROOT_TYPES]
    lines: list[str] = []
    for definition in [*roots, *others]:
        lines += _definition_section(definition)
    return "\n".join(lines).rstrip() + "\n"


# --- Socket.IO events ------------------------------------------------------------------------


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _json_type(schema: dict[str, Any], definitions: dict[str, Any]) -> str:
    """A property's type in words: its JSON type, format, enum values and bounds."""
    if "$ref" in schema:
        target = _ref_name(schema["$ref"])
        referenced = definitions[target]
        if "enum" in referenced:
            return "one of " + ", ".join(f"`{value}`" for value in referenced["enum"])
        return f"[{target}](#{target.lower()})"
    kinds = schema.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if "format" in schema:
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    bounds = [
        f"{word} {schema[key]}"
        for key, word in (("minimum", "at least"), ("minLength", "length at least"))
        if key in schema
    ]
    if "maxLength" in schema:
        bounds.append(f"at most {schema['maxLength']} characters")
    if bounds:
        text += ", " + ", ".join(bounds)
    return text


def render_events(schema: dict[str, Any]) -> str:
    """The event → payload table, then each payload's fields."""
    definitions: dict[str, Any] = schema["$defs"]
    lines = ["| event | payload |", "| --- | --- |"]
    payloads: list[str] = []
    for event, ref in schema["properties"].items():
        payload = _ref_name(ref["$ref"])
        lines.append(f"| `{event}` | [{payload}](#{payload.lower()}) |")
        if payload not in payloads:
            payloads.append(payload)
    lines.append("")
    for payload in payloads:
        definition = definitions[payload]
        lines += [f"### {payload}", ""]
        if "description" in definition:
            lines += [definition["description"], ""]
        properties: dict[str, Any] = definition.get("properties", {})
        if not properties:
            lines += ["No fields: `{}`.", ""]
            continue
        required = set(definition.get("required", ()))
        lines += ["| field | type | always present | note |", "| --- | --- | --- | --- |"]
        for name, field in properties.items():
            present = "yes" if name in required else "no"
            referenced = definitions.get(_ref_name(field.get("$ref", "")), {})
            note = _cell(field.get("description") or referenced.get("description", ""))
            kind = _cell(_json_type(field, definitions))
            lines.append(f"| `{name}` | {kind} | {present} | {note} |")
        if definition.get("additionalProperties") is False:
            lines += ["", "No other fields."]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedBlock:
    page: Path
    source: Path
    render: Callable[[str], str]

    def expected(self) -> str:
        return self.render(self.source.read_text())


BLOCKS = (
    GeneratedBlock(GRAPHQL_PAGE, SDL_PATH, lambda text: render_graphql(parse(text))),
    GeneratedBlock(EVENTS_PAGE, EVENTS_SCHEMA_PATH, lambda text: render_events(json.loads(text))),
)


def replace_block(page_text: str, block: GeneratedBlock) -> str:
    """The page with the text between its markers replaced by what the source gives."""
    begin = begin_marker(block.source)
    start = page_text.find(begin)
    end = page_text.find(END_MARKER, start)
    if start < 0 or end < 0:
        raise StalePage(
            f"{block.page.relative_to(PROJECT_ROOT)} lacks the lines {begin!r} and {END_MARKER!r}"
        )
    head = page_text[: start + len(begin)]
    return f"{head}\n\n{block.expected()}\n{page_text[end:]}"


def stale_pages() -> list[Path]:
    return [
        block.page
        for block in BLOCKS
        if replace_block(block.page.read_text(), block) != block.page.read_text()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.docs",
        description="Rewrite the generated blocks of docs/GRAPHQL.md and docs/EVENTS.md.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a page is stale"
    )
    args = parser.parse_args(argv)
    try:
        stale = stale_pages()
    except StalePage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        for page in stale:
            print(f"{page.relative_to(PROJECT_ROOT)} is stale: run python -m server.docs")
        return 1 if stale else 0
    for block in BLOCKS:
        if block.page in stale:
            block.page.write_text(replace_block(block.page.read_text(), block))
            print(f"{block.page.relative_to(PROJECT_ROOT)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
