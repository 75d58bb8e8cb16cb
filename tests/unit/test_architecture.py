"""The import contracts of docs/architecture.md hold, and `lint-imports` (run by `make lint`)
fails as soon as a change breaks them: a cycle between two modules, shared code that
imports a domain, a service that knows the web framework or takes the whole `Resources`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the project's contracts on the `kith` package under `source`."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=source,
        env=env,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of src/ to break on purpose."""
    shutil.copytree(ROOT / "src" / "kith", tmp_path / "kith", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def add_import(tree: Path, module: str, line: str) -> None:
    path = tree.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


CYCLES = "No import cycles: between packages, and between the modules of each package"
LAYERS = "Layers: the composition root, then the domains, then the shared code"
SHARED_NO_DOMAIN = "Shared code imports no domain"
NO_FRAMEWORK = "Services, repositories and the domain-neutral core know no web framework"
NO_LOCATOR = "Routes and services declare each resource they use: no service locator"


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        pytest.param(
            # auth.service imports auth.repository; the reverse closes a cycle inside auth.
            "kith.auth.repository",
            "from kith.auth import service as _cycle  # noqa",
            [CYCLES],
            id="a cycle between two modules of one package",
        ),
        pytest.param(
            "kith.runtime.transaction",
            "import kith.posts.service as _domain  # noqa",
            [SHARED_NO_DOMAIN, LAYERS],
            id="shared code importing a domain",
        ),
        pytest.param(
            "kith.posts.service",
            "from fastapi import Request as _request  # noqa",
            [NO_FRAMEWORK],
            id="a service reaching for the web framework",
        ),
        pytest.param(
            "kith.social.service",
            "from kith.runtime.resources import Resources as _locator  # noqa",
            [NO_LOCATOR],
            id="a service taking the whole Resources",
        ),
        pytest.param(
            "kith.posts.router",
            "from kith.runtime.resources import Resources as _locator  # noqa",
            [NO_LOCATOR],
            id="a route taking the whole Resources",
        ),
    ],
)
def test_breaking_a_contract_breaks_the_build(tree: Path, module: str, line: str, broken: list[str]) -> None:
    add_import(tree, module, line)
    result = lint_imports(tree)
    assert result.returncode != 0
    for contract in broken:
        assert f"{contract} BROKEN" in result.stdout, result.stdout


SHARED = ("core", "db", "runtime", "http")


def lines_of(package: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in package.rglob("*.py"))


def test_the_share_of_shared_code_in_the_architecture_doc_is_current() -> None:
    source = ROOT / "src" / "kith"
    total = sum(
        len(path.read_text().splitlines())
        for path in source.rglob("*.py")
        if "migrations" not in path.relative_to(source).parts
    )
    shared = sum(lines_of(source / name) for name in SHARED)
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc.split("<!-- shared-share -->", 1)[1]
    match = re.search(r"\*\*([\d,]+) of ([\d,]+) \((\d+) %\)\*\*", table)
    assert match, "docs/architecture.md must state the shared share as '**N of M (P %)**'"
    stated = int(match.group(3))
    actual = round(100 * shared / total)
    assert abs(stated - actual) <= 2, (
        f"shared code is {actual} % ({shared} of {total}); the doc says {stated} %"
    )
