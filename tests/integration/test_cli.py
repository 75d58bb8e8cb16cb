"""The `kith` command as an operator runs it: migrate, create-admin, serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import API

KITH = str(Path(sys.executable).parent / "kith")


def run_kith(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KITH, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def kith_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
    env.update({"KITH_VAR_DIR": str(tmp_path / "var"), "KITH_ENV": "development"})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_help_lists_the_commands(kith_env: dict[str, str]) -> None:
    result = run_kith("--help", env=kith_env)
    assert result.returncode == 0
    for command in ("serve", "migrate", "create-admin", "worker"):
        assert command in result.stdout


def test_production_refuses_a_missing_or_short_secret_key(kith_env: dict[str, str]) -> None:
    env = {**kith_env, "KITH_ENV": "production"}
    result = run_kith("migrate", env=env)
    assert result.returncode == 2
    assert "KITH_SECRET_KEY is missing" in result.stderr
    result = run_kith("migrate", env={**env, "KITH_SECRET_KEY": "short"})
    assert result.returncode == 2
    assert "only 5 characters" in result.stderr


def test_development_key_is_generated_once_and_kept(kith_env: dict[str, str], tmp_path: Path) -> None:
    assert run_kith("migrate", env=kith_env).returncode == 0
    key_file = tmp_path / "var" / "secret_key"
    first = key_file.read_text()
    assert len(first) >= 32
    assert run_kith("migrate", env=kith_env).returncode == 0
    assert key_file.read_text() == first
    assert oct(key_file.stat().st_mode)[-3:] == "600"


def test_worker_without_redis_explains_itself(kith_env: dict[str, str]) -> None:
    result = run_kith("worker", env=kith_env)
    assert result.returncode == 2
    assert "KITH_REDIS_URL" in result.stderr


@pytest.fixture
def served(kith_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """`kith migrate`, `kith create-admin`, then `kith serve` on a free port."""
    assert run_kith("migrate", env=kith_env).returncode == 0
    created = run_kith(
        "create-admin",
        "--username",
        "boss",
        "--email",
        "boss@example.com",
        env=kith_env,
        stdin="a strong admin password\n",
    )
    assert created.returncode == 0, created.stderr
    port = free_port()
    env = {**kith_env, "KITH_PORT": str(port)}
    process = subprocess.Popen([KITH, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("kith serve did not become ready")
        yield base, env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_serve_runs_the_api_and_the_admin_can_log_in(served: tuple[str, dict[str, str]]) -> None:
    base, _ = served
    response = httpx.post(
        f"{base}{API}/auth/login", json={"username": "boss", "password": "a strong admin password"}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = httpx.get(f"{base}{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "admin"
    assert me.json()["email_verified"] is True
    assert httpx.get(f"{base}/docs").status_code == 200


def test_create_admin_refuses_bad_input(kith_env: dict[str, str]) -> None:
    assert run_kith("migrate", env=kith_env).returncode == 0
    weak = run_kith(
        "create-admin", "--username", "boss", "--email", "boss@example.com", env=kith_env, stdin="password\n"
    )
    assert weak.returncode == 1
    assert "password" in weak.stderr
    ok = run_kith(
        "create-admin",
        "--username",
        "boss",
        "--email",
        "b@example.com",
        env=kith_env,
        stdin="long enough pw\n",
    )
    assert ok.returncode == 0
    again = run_kith(
        "create-admin",
        "--username",
        "BOSS",
        "--email",
        "c@example.com",
        env=kith_env,
        stdin="long enough pw\n",
    )
    assert again.returncode == 1
    assert "taken" in again.stderr


def test_export_builds_a_users_archive_with_progress(kith_env: dict[str, str]) -> None:
    assert run_kith("migrate", env=kith_env).returncode == 0
    made = run_kith(
        "create-admin",
        "--username",
        "boss",
        "--email",
        "boss@example.com",
        env=kith_env,
        stdin="a strong admin password\n",
    )
    assert made.returncode == 0, made.stderr
    done = run_kith("export", "Boss", "--no-email", env=kith_env)
    assert done.returncode == 0, done.stderr
    assert "Exporting boss (export " in done.stderr
    assert "export" in done.stderr.splitlines()[-1]  # the progress bar's line
    path = Path(done.stdout.splitlines()[-1].split()[0])
    assert path.parent == Path(kith_env["KITH_VAR_DIR"]) / "exports"
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("profile.json"))["username"] == "boss"
    unknown = run_kith("export", "nobody", env=kith_env)
    assert unknown.returncode == 1
    assert "nobody" in unknown.stderr
