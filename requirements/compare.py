"""List what `make upgrade-check` installed that differs from the lock.

Usage: python requirements/compare.py LOCK_FILE PYTHON

LOCK_FILE is a hashed requirements file written by `make lock`; PYTHON is the interpreter of
the throwaway environment. Prints one line per package whose version is not the locked one,
so the output of a failing check starts with the candidates for the break.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.markers import Marker

# `name==version`, then `; marker` where a universal lock pins different versions by platform.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, str]:
    """The lock's pins for this interpreter (run this script with the checked one's version)."""
    pins = (PIN.match(line) for line in lock.read_text().splitlines())
    return {
        normalise(m.group(1)): m.group(2)
        for m in pins
        if m and (m.group(3) is None or Marker(m.group(3)).evaluate())
    }


def installed_versions(python: str) -> dict[str, str]:
    script = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({d.name: d.version for d in m.distributions()}))"
    )
    # Our own interpreter path from the Makefile, not outside input.
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True).stdout  # noqa: S603
    return {normalise(name): version for name, version in json.loads(out).items()}


def main() -> int:
    lock, python = Path(sys.argv[1]), sys.argv[2]
    locked, installed = locked_versions(lock), installed_versions(python)
    changed = sorted(name for name in installed if name in locked and installed[name] != locked[name])
    added = sorted(name for name in installed if name not in locked and name not in {"kith", "pip"})
    for name in changed:
        print(f"{name}: {locked[name]} (locked) -> {installed[name]}")
    for name in added:
        print(f"{name}: not in the lock -> {installed[name]}")
    if not changed and not added:
        print("The newest allowed versions are the locked ones.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
