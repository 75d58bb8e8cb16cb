"""The lock in requirements/: what `make run`, `make test`, `make bench` and the image install.

Every dependency that pyproject.toml declares is pinned there at a version it allows, every
pin carries hashes, and the three files agree with each other, so a dependency added to
pyproject.toml without `make lock` fails here rather than on somebody else's machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(name: str) -> dict[str, set[str]]:
    """Package -> every version the lock file pins (a universal lock may pin one per platform)."""
    found: dict[str, set[str]] = {}
    for line in (LOCKS / name).read_text().splitlines():
        if match := PIN.match(line):
            found.setdefault(canonicalize_name(match.group(1)), set()).add(match.group(2))
    return found


def pins_here(name: str) -> dict[str, str]:
    """Package -> the version this interpreter installs from the lock file."""
    found: dict[str, str] = {}
    for line in (LOCKS / name).read_text().splitlines():
        match = PIN.match(line)
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate()):
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def declared() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return {
        "main.txt": project["dependencies"],
        "dev.txt": project["dependencies"] + extras["dev"],
        "bench.txt": project["dependencies"] + extras["dev"] + extras["bench"],
    }


@pytest.mark.parametrize("lock", ["main.txt", "dev.txt", "bench.txt"])
def test_every_declared_dependency_is_pinned_at_an_allowed_version(lock: str) -> None:
    locked = pins_here(lock)
    build = (LOCKS / "build.in").read_text().splitlines()
    for text in declared()[lock] + [line for line in build if line and not line.startswith("#")]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is declared but not in requirements/{lock}: run make lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements/{lock} pins {requirement.name}=={locked[name]}, outside {requirement.specifier}"
        )


@pytest.mark.parametrize("lock", ["main.txt", "dev.txt", "bench.txt"])
def test_every_pin_carries_hashes(lock: str) -> None:
    text = (LOCKS / lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert len(entries) > 10
    for entry in entries:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
    # No index or download address: pip and uv use the machine's own configured registry.
    assert "://" not in text


def test_runtime_and_test_locks_use_the_benchmark_locks_versions() -> None:
    bench = pins("bench.txt")
    for lock in ("main.txt", "dev.txt"):
        for name, versions in pins(lock).items():
            assert versions <= bench.get(name, set()), (
                f"{name} {versions} in {lock}, {bench.get(name)} in bench.txt"
            )
    assert set(pins("main.txt")) <= set(pins("dev.txt")) <= set(bench)


def test_the_makefile_installs_from_the_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "install --require-hashes -r $(1)" in makefile
    assert re.search(r"^\$\(STAMP\): \$\(LOCK_DEV\)", makefile, re.MULTILINE)
    assert "call install_locked,$(LOCK_DEV)" in makefile
    assert "call install_locked,$(LOCK_BENCH)" in makefile
    assert "LOCK_DEV := requirements/dev.txt" in makefile
    # Nothing else installs Kith's dependencies by name, unpinned.
    assert "install -e '.[" not in makefile.split("upgrade-check:")[0]


def test_the_locked_build_requirements_are_pyprojects() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    listed = [
        line for line in (LOCKS / "build.in").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert sorted(listed) == sorted(build)
