"""The committed TypeScript types are what `make types` generates now, and they type-check."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    parse,
    validate,
)

from server.graphql import SCHEMA_PATH
from tests.contract.conftest import CONTRACT_DIR, PROJECT_ROOT

GENERATED = CONTRACT_DIR / "generated"
OPERATIONS = CONTRACT_DIR / "operations.graphql"
TSC = PROJECT_ROOT / "node_modules" / ".bin" / "tsc"
TSCONFIG = Path(__file__).resolve().parent / "typescript" / "tsconfig.json"
TIMEOUT = 90


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not on PATH: `make install` needs Node.js and npm")
    return path


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_generated_types_match_the_committed_ones(tmp_path: Path) -> None:
    result = run([node(), "contract/generate.mjs", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in GENERATED.iterdir())
    assert fresh == committed
    match, mismatch, errors = filecmp.cmpfiles(tmp_path, GENERATED, fresh, shallow=False)
    assert mismatch == errors == [], (
        f"contract/generated is stale ({', '.join(mismatch + errors)}): run `make types` "
        "and commit the result"
    )
    assert match == fresh  # and so the output depends on the sources alone


def test_the_generated_types_and_a_typed_socket_io_client_type_check() -> None:
    if not TSC.exists():
        pytest.fail(f"{TSC} is missing: run `make install`")
    result = run([node(), str(TSC), "--project", str(TSCONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_operations_are_valid_and_cover_every_root_field_with_every_argument() -> None:
    schema = build_schema(SCHEMA_PATH.read_text())
    document = parse(OPERATIONS.read_text())
    assert validate(schema, document) == []

    used: dict[str, set[str]] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root = "Query" if definition.operation.value == "query" else "Mutation"
        fields = [s for s in definition.selection_set.selections if isinstance(s, FieldNode)]
        assert len(fields) == 1, f"{definition.name}: one root field per document"
        field = fields[0]
        used[f"{root}.{field.name.value}"] = {arg.name.value for arg in field.arguments or ()}

    expected: dict[str, set[str]] = {}
    for root in ("Query", "Mutation"):
        root_type = schema.get_type(root)
        assert isinstance(root_type, GraphQLObjectType)
        for name, definition in root_type.fields.items():
            expected[f"{root}.{name}"] = set(definition.args)
    assert used == expected


def unselected(
    schema: GraphQLSchema,
    type_: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    where: str,
) -> list[str]:
    """Fields of `type_` (and, recursively, of the objects selected) that the selection omits."""
    selected: dict[str, FieldNode] = {}
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            for inner in fragment.selection_set.selections:
                if isinstance(inner, FieldNode):
                    selected[inner.name.value] = inner
        elif isinstance(selection, FieldNode):
            selected[selection.name.value] = selection
    missing = [f"{where}.{name}" for name in type_.fields if name not in selected]
    for name, node in selected.items():
        field_type = get_named_type(type_.fields[name].type)
        if isinstance(field_type, GraphQLObjectType) and node.selection_set is not None:
            missing += unselected(
                schema, field_type, node.selection_set, fragments, f"{where}.{name}"
            )
    return missing


def test_every_operation_selects_every_field_of_what_it_returns() -> None:
    schema = build_schema(SCHEMA_PATH.read_text())
    document = parse(OPERATIONS.read_text())
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    missing: list[str] = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root_type = schema.get_type(
            "Query" if definition.operation.value == "query" else "Mutation"
        )
        assert isinstance(root_type, GraphQLObjectType)
        field = definition.selection_set.selections[0]
        assert isinstance(field, FieldNode)
        returned = get_named_type(root_type.fields[field.name.value].type)
        if isinstance(returned, GraphQLObjectType):
            assert field.selection_set is not None
            missing += unselected(
                schema, returned, field.selection_set, fragments, field.name.value
            )
    assert missing == []
