"""Everything a fuzzing run needs around schemathesis: settings, accounts, a real server.

Used by the tests in this folder and from the command line (`make fuzz`):

    .venv/bin/python -m tests.fuzz.harness                     # the long profile, SQLite
    .venv/bin/python -m tests.fuzz.harness --postgres --redis  # PostgreSQL and Redis
    .venv/bin/python -m tests.fuzz.harness --max-time 60 -- --seed 1   # extra CLI options

It starts `kith serve` on a fresh database with every rate limit raised (not switched
off: the limiting code still runs on every request), creates a plain user and an admin
the way an operator would (`kith create-admin`), and runs `schemathesis run` with
`tests/fuzz/schemathesis.toml`. The exit status is schemathesis's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kith.auth import service as auth
from kith.core.config import RATE_LIMIT_SETTINGS, Settings
from kith.db.migrate import upgrade
from kith.db.models import Role
from kith.main import open_resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import REDIS_URL, postgres_database
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
BIN = Path(sys.executable).parent
# High enough that a fuzzing run never meets them, low enough that they are real limits.
RAISED_LIMIT = "1000000/hour"


@dataclass(frozen=True)
class FuzzAccount:
    username: str
    password: str
    id: str

    def encoded(self) -> str:
        return f"{self.username}:{self.password}:{self.id}"


def raised_limits() -> dict[str, Any]:
    """Settings that keep rate limits on, at a level no fuzzing run reaches."""
    return {"rate_limits_enabled": True, **dict.fromkeys(RATE_LIMIT_SETTINGS, RAISED_LIMIT)}


def fuzz_settings(database_url: str, var_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        env="test",
        var_dir=var_dir,
        database_url=database_url,
        public_url="https://kith.example",
        trusted_hosts=["*"],
        log_level="WARNING",
        _env_file=None,
        **{**raised_limits(), **overrides},
    )


async def create_accounts(settings: Settings) -> dict[str, FuzzAccount]:
    """A plain user and an admin with random passwords, made like `kith create-admin` makes one."""
    resources = await open_resources(settings)
    accounts: dict[str, FuzzAccount] = {}
    try:
        for role in (Role.user, Role.admin):
            username = f"fuzz_{role.value}_{secrets.token_hex(3)}"
            password = secrets.token_urlsafe(18)
            async with unit_of_work(resources) as session:
                user = await auth.create_user(
                    session,
                    resources.passwords,
                    username=username,
                    email=f"{username}@example.com",
                    password=password,
                    role=role,
                    email_verified=True,
                )
            accounts[role.value] = FuzzAccount(username, password, user.id)
    finally:
        await resources.close()
    return accounts


def account_environment(accounts: dict[str, FuzzAccount]) -> dict[str, str]:
    """What `tests/fuzz/hooks.py` reads to log in."""
    return {"KITH_FUZZ_USER": accounts["user"].encoded(), "KITH_FUZZ_ADMIN": accounts["admin"].encoded()}


def server_environment(settings: Settings, port: int) -> dict[str, str]:
    """`KITH_*` variables that make `kith serve` run with `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KITH_")}
    env.update(
        {
            "KITH_ENV": "test",
            "KITH_VAR_DIR": str(settings.var_dir),
            "KITH_DATABASE_URL": settings.database_url,
            "KITH_PUBLIC_URL": settings.public_url,
            "KITH_PORT": str(port),
            "KITH_LOG_LEVEL": "WARNING",
            "KITH_RATE_LIMITS_ENABLED": "true",
        }
    )
    for name in RATE_LIMIT_SETTINGS:
        env[f"KITH_{name.upper()}"] = getattr(settings, name)
    if settings.redis_url:
        env["KITH_REDIS_URL"] = settings.redis_url
        env["KITH_RATE_LIMIT_KEY_PREFIX"] = settings.rate_limit_key_prefix
        env["KITH_JOB_QUEUE"] = settings.job_queue
    return env


@contextlib.contextmanager
def running_server(settings: Settings, log: Path) -> Iterator[str]:
    """`kith serve` as a real process on a free port; yields its base URL."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(BIN / "kith"), "serve"],
            env=server_environment(settings, port),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"kith serve exited: {log.read_text()}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kith serve did not start: {log.read_text()}")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def schemathesis_command(base_url: str, *extra: str) -> list[str]:
    return [
        str(BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--no-color",
        *extra,
    ]


def run_schemathesis(
    base_url: str, accounts: dict[str, FuzzAccount], *extra: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """The schemathesis CLI against `base_url`, logged in as `accounts`."""
    env = {**os.environ, **account_environment(accounts), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        schemathesis_command(base_url, *extra),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def prepared_server(
    var_dir: Path, *, postgres: bool = False, redis_url: str | None = None
) -> Iterator[tuple[str, dict[str, FuzzAccount]]]:
    """A migrated database with the two accounts, served by `kith serve`."""
    with contextlib.ExitStack() as stack:
        if postgres:
            database_url = stack.enter_context(postgres_database("kith_fuzz"))
        else:
            database_url = f"sqlite+aiosqlite:///{var_dir / 'kith.db'}"
            upgrade(database_url)
        run = uuid.uuid4().hex[:8]
        # Its own Redis keys and job stream, so nothing else sharing the Redis interferes.
        settings = fuzz_settings(
            database_url,
            var_dir,
            redis_url=redis_url,
            rate_limit_key_prefix=f"kith-fuzz-{run}:limits",
            job_queue=f"kith-fuzz-{run}:jobs",
        )
        accounts = asyncio.run(create_accounts(settings))
        base_url = stack.enter_context(running_server(settings, var_dir / "server.log"))
        yield base_url, accounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--redis", action="store_true", help=f"Redis at {REDIS_URL}")
    parser.add_argument("--max-examples", type=int, default=200, help="cases per operation and phase")
    parser.add_argument("--max-time", type=int, default=None, help="seconds; fuzz until spent")
    parser.add_argument("extra", nargs="*", help="more `schemathesis run` options, after --")
    args = parser.parse_args(argv)
    options = ["--max-examples", str(args.max_examples), *args.extra]
    if args.max_time:
        options += ["--max-time", str(args.max_time)]
    with tempfile.TemporaryDirectory(prefix="kith-fuzz-") as directory:
        var_dir = Path(directory)
        redis_url = REDIS_URL if args.redis else None
        with prepared_server(var_dir, postgres=args.postgres, redis_url=redis_url) as (base_url, accounts):
            print(f"Fuzzing {base_url} as {accounts['user'].username} and {accounts['admin'].username}")
            env = {**os.environ, **account_environment(accounts), "PYTHONPATH": str(ROOT)}
            return subprocess.run(
                schemathesis_command(base_url, *options), env=env, cwd=ROOT, check=False
            ).returncode


if __name__ == "__main__":
    sys.exit(main())
