"""Sampling the server with py-spy during a timed run, and summing up where its time went.

`python -m bench run ... --py-spy` records every Kith scenario's timed run into
`<out>/profiles/<config>-<scenario>.txt` (py-spy's collapsed stacks: open them in speedscope
or feed them to flamegraph.pl) and writes `<...>.md`, the functions with the most samples,
by themselves and with what they call. Only samples of running code are kept (py-spy skips
idle threads), so the shares are shares of the server's CPU, not of wall time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
# "function (module/file.py:123)" -> "function (module/file.py)": lines split one function.
FRAME_LINE = re.compile(r":\d+\)$")


@dataclass
class Recording:
    process: subprocess.Popen[bytes]
    stacks: Path


def start(pid: int, base: Path, duration_s: float, rate: int = 200) -> Recording:
    """Start sampling `pid` and its children for `duration_s` seconds."""
    base.parent.mkdir(parents=True, exist_ok=True)
    stacks = base.with_suffix(".txt")
    command = [
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(duration_s))),
        "--output",
        str(stacks),
    ]
    return Recording(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), stacks)


def finish(recording: Recording, top: int = 40) -> Path | None:
    """Wait for py-spy, then write the summary beside the stacks; None if nothing was recorded."""
    _, error = recording.process.communicate(timeout=120)
    if not recording.stacks.exists():
        print(f"py-spy recorded nothing: {error.decode(errors='replace').strip()}", flush=True)
        return None
    summary = recording.stacks.with_suffix(".md")
    summary.write_text(summarise(recording.stacks.read_text(), top=top))
    return summary


def records(collapsed: str) -> list[str]:
    """The stack records: each starts with `process <pid>:` (--subprocesses); a frame of code
    generated at run time (SQLAlchemy compiles some functions) may hold its source's newlines."""
    found: list[str] = []
    for line in collapsed.splitlines():
        if line.startswith("process ") or not found:
            found.append(line)
        else:
            found[-1] += "\\n" + line
    return found


def parse(collapsed: str) -> list[tuple[list[str], int]]:
    """py-spy's raw format: one `process;frame;...;frame count` record per distinct stack."""
    stacks = []
    for record in records(collapsed):
        frames, _, count = record.rpartition(" ")
        if not frames or not count.isdigit():
            continue
        names = [FRAME_LINE.sub(")", frame) for frame in frames.split(";")]
        stacks.append(([name for name in names if not name.startswith("process ")], int(count)))
    return stacks


def summarise(collapsed: str, top: int = 40) -> str:
    """Markdown tables of the functions with the most samples, alone and with their callees."""
    stacks = parse(collapsed)
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [f"{total} samples of running server code.", ""]
    for title, counter in (("By itself", own), ("With what it calls", inclusive)):
        lines += [f"## {title}", "", "| share | samples | function |", "|---:|---:|---|"]
        for name, count in counter.most_common(top):
            lines.append(f"| {count / total:.1%} | {count} | `{name}` |")
        lines.append("")
    return "\n".join(lines)
