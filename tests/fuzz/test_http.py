"""The schemathesis CLI over HTTP against a real `kith serve`, as a deployment runs it.

PostgreSQL (and Redis, when they answer) behind a real uvicorn process, rate limits
raised but on, the accounts created like an operator creates them. The CI profile gives
all four phases `KITH_FUZZ_HTTP_SECONDS` (45 by default) between them; schemathesis
shares the budget out. `make fuzz` gives them much longer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REDIS_URL, postgres_available, redis_available
from tests.fuzz import harness

SECONDS = int(os.environ.get("KITH_FUZZ_HTTP_SECONDS", "45"))
PHASES = os.environ.get("KITH_FUZZ_HTTP_PHASES", "examples,coverage,fuzzing,stateful")


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 240)
def test_schemathesis_over_http(tmp_path: Path) -> None:
    postgres = postgres_available() or IN_CI
    redis_url = REDIS_URL if redis_available() or IN_CI else None
    with harness.prepared_server(tmp_path, postgres=postgres, redis_url=redis_url) as (base_url, accounts):
        result = harness.run_schemathesis(
            base_url,
            accounts,
            "--phases",
            PHASES,
            "--max-time",
            str(SECONDS),
            timeout=SECONDS + 180,
        )
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert result.returncode == 0, (
        f"{result.stdout[-20000:]}\n{result.stderr[-5000:]}\n--- server log\n{log[-5000:]}"
    )
    assert "Traceback" not in log, log[-5000:]
