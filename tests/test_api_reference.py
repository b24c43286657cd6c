"""docs/api.md, the API reference, says what the server's own OpenAPI document says: the same
operations, and for each its parameters, body fields and statuses; every field of every schema;
and every error code the server can answer, with its status. An endpoint, a parameter or an
error code added to (or removed from) the server without the reference fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from distbench.api import errors as api_errors
from distbench.app import create_app
from distbench.errors import ERROR_BY_CODE, STATUS_BY_CODE
from distbench.settings import Settings

REFERENCE = Path(__file__).parent.parent / "docs" / "api.md"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# An operation's section starts at a heading like ### `GET /api/runs/` and ends at the next
# heading of any level.
OPERATION_HEADING = re.compile(rf"^### `({'|'.join(HTTP_METHODS)}) (/\S*)`$")
ERROR_ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \|")
CODE = re.compile(r"^[a-z]+(_[a-z]+)*$")

Operation = tuple[str, str]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document ``GET /openapi.json`` serves (the app builds it without starting up)."""
    data_dir = tmp_path_factory.mktemp("data")
    app = create_app(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir}/db.sqlite"))
    return app.openapi()


def reference_sections() -> dict[Operation, str]:
    """Each documented operation and the text of its section."""
    sections: dict[Operation, str] = {}
    current: Operation | None = None
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("#"):
            match = OPERATION_HEADING.match(line)
            current = None if match is None else (match[1], match[2])
            if current is not None:
                assert current not in sections, f"{current} is documented twice"
                sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def operations(document: dict[str, Any]) -> dict[Operation, dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` (and, for a list, its items' ``$ref``) followed."""
    if schema.get("type") == "array":
        return resolve(document, schema["items"])
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def inputs(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """The names a caller sends: path and query parameters, and body fields."""
    names = {parameter["name"] for parameter in operation.get("parameters", [])}
    for content in operation.get("requestBody", {}).get("content", {}).values():
        names |= set(resolve(document, content["schema"]).get("properties", {}))
    return names


def test_reference_documents_every_operation_and_no_other(document: dict[str, Any]) -> None:
    served = set(operations(document))
    documented = set(reference_sections())

    assert served - documented == set(), "served but missing from docs/api.md"
    assert documented - served == set(), "in docs/api.md but not served"


def test_each_section_names_every_parameter_and_body_field(document: dict[str, Any]) -> None:
    sections = reference_sections()
    missing = {
        key: sorted(name for name in inputs(document, op) if f"`{name}`" not in sections[key])
        for key, op in operations(document).items()
        if key in sections
    }

    assert {key: names for key, names in missing.items() if names} == {}
    # The check reads something: the run form's fields and the series' filters are in it.
    assert {"num_workers", "queue", "image_name"} <= inputs(
        document, operations(document)["POST", "/api/runs/"]
    )
    assert {"since", "metric_type", "format"} <= inputs(
        document, operations(document)["GET", "/api/metrics/{pod_name_or_run_id}/"]
    )


def test_each_section_gives_every_status_the_operation_answers(document: dict[str, Any]) -> None:
    sections = reference_sections()
    missing = {
        key: sorted(s for s in op["responses"] if f"`{s}`" not in sections[key])
        for key, op in operations(document).items()
        if key in sections
    }

    assert {key: statuses for key, statuses in missing.items() if statuses} == {}


def test_every_field_of_every_schema_is_named(document: dict[str, Any]) -> None:
    text = REFERENCE.read_text()

    def named(field: str) -> bool:
        # In code (`state`) or as a JSON key of a shape ({"run_id": 3, "logs": ...}).
        return f"`{field}`" in text or f'"{field}"' in text

    missing = {
        name: sorted(field for field in schema.get("properties", {}) if not named(field))
        for name, schema in document["components"]["schemas"].items()
    }

    assert {name: fields for name, fields in missing.items() if fields} == {}


def codes_of_the_http_layer() -> dict[str, int | None]:
    """The codes ``api/errors.py`` answers with itself (not through a ``DistbenchError``), with
    their status where the module says it: a status→code table's entries, the literal codes
    it passes to ``error_body``, and a lookup's fallback code."""
    tree = ast.parse(Path(api_errors.__file__).read_text())
    codes: dict[str, int | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, int):
                    assert isinstance(value, ast.Constant), ast.dump(value)
                    assert isinstance(value.value, str), value.value
                    codes[value.value] = key.value
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            literal = {"error_body": node.args[0], "get": node.args[-1]}.get(name)
            if (
                isinstance(literal, ast.Constant)
                and isinstance(literal.value, str)
                and CODE.match(literal.value)
            ):
                codes.setdefault(literal.value, None)
    return codes


def chapter(title: str) -> str:
    """The text of the ``## title`` chapter of docs/api.md, up to the next chapter."""
    text = REFERENCE.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end == -1 else end]


def error_table() -> dict[str, str]:
    """The table of the Errors chapter: code → status as written."""
    rows = [ERROR_ROW.match(line) for line in chapter("Errors").splitlines()]
    return {row[1]: row[2].strip() for row in rows if row is not None}


def test_error_table_has_every_code_the_server_answers_with_its_status() -> None:
    table = error_table()
    domain = {code: STATUS_BY_CODE.get(code, 500) for code in ERROR_BY_CODE}
    http_layer = codes_of_the_http_layer()

    assert set(table) == set(domain) | set(http_layer)
    for code, status in domain.items():
        assert table[code] == str(status), code
    for code, known in http_layer.items():
        if known is not None:
            assert table[code] == str(known), code
    # The AST reading finds what it is meant to: the fallback and the framework's own codes.
    assert {"http_error", "client_disconnected", "method_not_allowed"} <= set(http_layer)
