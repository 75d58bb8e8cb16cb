"""Running wrk with bench/lua/kith.lua and reading its result line."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kith.core.urls import API_PREFIX

SCRIPT = Path(__file__).with_name("lua") / "kith.lua"
RESULT_PREFIX = "BENCH_RESULT "


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    duration_s: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    pairs_exhausted: int = 0
    raw: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def unexpected(self, expected: frozenset[int]) -> int:
        """Responses whose status is not among `expected`, plus socket errors and timeouts."""
        wrong = sum(count for status, count in self.statuses.items() if status not in expected)
        return wrong + sum(self.socket_errors.values())


def parse_output(output: str) -> WrkResult:
    """The result of a run, from wrk's standard output (the line kith.lua's done() prints)."""
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            break
    else:
        raise ValueError(f"no {RESULT_PREFIX.strip()} line in wrk's output:\n{output}")
    errors = {key: int(value) for key, value in data["errors"].items() if key != "status"}
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={int(status): int(count) for status, count in data["statuses"].items()},
        socket_errors=errors,
        pairs_exhausted=int(data.get("pairs_exhausted", 0)),
        raw=data,
    )


def command(
    url: str, *, duration_s: float, connections: int, threads: int = 1, cpus: str | None = None
) -> list[str]:
    """The wrk command line; `cpus` pins wrk (taskset) away from the server."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    line = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
    ]
    return ["taskset", "-c", cpus, *line] if cpus else line


def start(
    url: str,
    scenario: str,
    data: Path | None,
    *,
    duration_s: float,
    connections: int,
    threads: int = 1,
    cpus: str | None = None,
    delay_ms: float = 0,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "BENCH_SCENARIO": scenario,
        "BENCH_THREADS": str(threads),
        "BENCH_DELAY_MS": str(int(delay_ms)),
        "BENCH_API": API_PREFIX,
        **({"BENCH_DATA": str(data)} if data else {}),
        **(extra_env or {}),
    }
    return subprocess.Popen(
        command(url, duration_s=duration_s, connections=connections, threads=threads, cpus=cpus),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> WrkResult:
    output, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    return parse_output(output)
