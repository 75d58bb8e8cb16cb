"""Problem types: every error code is a class, and every class's code has a page.

The codes and their pages are described in docs/api.md#conventions.
"""

from __future__ import annotations

import ast
import html
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import kith
from kith.core.errors import DomainError, NotFound, problem_types

SRC = Path(kith.__file__).parent


def _error_classes() -> Iterator[type[DomainError]]:
    """Every subclass of `DomainError` that Kith defines (the app imports them all)."""
    pending = list(DomainError.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("kith."):
            yield cls


def _statuses_by_code() -> dict[str, set[int]]:
    statuses: dict[str, set[int]] = defaultdict(set)
    for cls in _error_classes():
        statuses[cls.code].add(cls.status)
    return statuses


async def test_every_error_class_has_a_page_with_its_description(client: httpx.AsyncClient) -> None:
    classes = list(_error_classes())
    # The codes that once had no page are among them.
    codes = {cls.code for cls in classes}
    assert {"post_not_found", "comment_not_found", "friend_request_not_found", "not_pending"} <= codes
    assert {"method_not_allowed", "malformed_json", "rate_limited", "internal_error", "invalid_host"} <= codes
    for cls in classes:
        assert cls.description.strip(), cls
        assert problem_types()[cls.code] == cls.description, cls
        page = await client.get(f"/problems/{cls.code}")
        assert page.status_code == 200, cls
        assert page.headers["content-type"].startswith("text/html")
        assert f"<h1>{cls.code}</h1>" in page.text
        assert html.escape(cls.description) in page.text
    # And the pages list nothing that no class raises.
    assert set(problem_types()) == codes


async def test_an_unknown_code_has_no_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/no_such_code")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_code_cannot_come_without_its_description() -> None:
    with pytest.raises(TypeError, match="without a description"):

        class Undocumented(NotFound):
            code = "undocumented_thing"

    with pytest.raises(TypeError, match="snake_case"):

        class Shouting(NotFound):
            code = "NotSnake"
            description = "A code that does not look like the others."

    # One code, one page: a second class may reuse a code only with the same description.
    with pytest.raises(TypeError, match="differently"):

        class Contradicting(NotFound):
            code = "post_not_found"
            description = "Something else entirely."

    assert "undocumented_thing" not in problem_types()
    assert problem_types()["post_not_found"] == "No such post, or not visible to the caller."


async def test_every_problem_type_the_spec_names_has_a_page(app: FastAPI, client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).text
    statuses = _statuses_by_code()
    # `type` URIs (the Problem schema's example) and "404 `post_not_found`" in descriptions.
    named = set(re.findall(r"/problems/([a-z0-9_]+)", spec))
    for status, code in re.findall(r"\b([45]\d\d) `([a-z0-9_]+)`", spec):
        assert int(status) in statuses.get(code, set()), f"the spec says {status} `{code}`"
        named.add(code)
    assert len(named) >= 20
    for code in named:
        assert code in problem_types(), code
        assert (await client.get(f"/problems/{code}")).status_code == 200, code


def _string_codes() -> Iterator[tuple[str, int, str]]:
    """String codes outside the `code = "..."` line of an error class: (file, line, what)."""
    codes = set(problem_types())
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        declared: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (
                        isinstance(statement, ast.Assign)
                        and [getattr(target, "id", None) for target in statement.targets] == ["code"]
                        and isinstance(statement.value, ast.Constant)
                    ):
                        declared.add(id(statement.value))
        for node in ast.walk(tree):
            where = str(path.relative_to(SRC))
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                yield where, node.value.lineno, f"code={node.value.value!r}"
            if isinstance(node, ast.Constant) and node.value in codes and id(node) not in declared:
                yield where, node.lineno, repr(node.value)


def test_codes_are_declared_only_by_error_classes(app: FastAPI) -> None:
    found = list(_string_codes())
    assert found == [], "raise an error class instead of naming its code: " + ", ".join(
        f"{where}:{line} {what}" for where, line, what in found
    )


def test_every_declared_code_belongs_to_a_class_the_app_loads(app: FastAPI) -> None:
    """A class in a module the app never imports would raise a code without a page."""
    declared = set()
    for path in SRC.rglob("*.py"):
        declared |= set(re.findall(r'^    code = "([a-z0-9_]+)"$', path.read_text(), re.MULTILINE))
    assert declared == set(problem_types())
