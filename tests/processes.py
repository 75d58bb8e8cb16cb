"""`kith serve` and `kith migrate` as real processes, for tests that need a real server:
several workers, signals, faults."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.helpers import API
from tests.live import free_port

KITH = str(Path(sys.executable).parent / "kith")
PASSWORD = "serve processes pw"


class Server:
    """A `kith serve` process on a free port."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [KITH, "serve", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, redis: bool = False) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"{self.base}/readyz", timeout=1)
                if response.status_code == 200 and (not redis or response.json()["checks"]["redis"] == "ok"):
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "kith serve exited"
            assert time.monotonic() < deadline, "kith serve did not become ready"
            time.sleep(0.1)

    def workers(self) -> list[int]:
        """Pids of the worker processes (children of `kith serve`), itself if it has none."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        # Skip multiprocessing's resource tracker: workers are started through spawn_main.
        workers = [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        return workers or [pid]

    def connections_by_worker(self) -> dict[int, set[int]]:
        """For each worker: the client ports of the established connections it holds."""
        by_inode: dict[str, int] = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if local_port == self.port and fields[3] == "01":  # ESTABLISHED
                        by_inode[f"socket:[{fields[9]}]"] = remote_port
        held: dict[int, set[int]] = {}
        for pid in self.workers():
            ports = set()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target in by_inode:
                        ports.add(by_inode[target])
            held[pid] = ports
        return held

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def base_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
    env.update(
        KITH_VAR_DIR=str(tmp_path / "var"),
        KITH_SECRET_KEY="serve-processes-test-key-" + "x" * 20,
        KITH_LOG_LEVEL="WARNING",
        KITH_RATE_LIMIT_KEY_PREFIX=f"kith-test:{uuid.uuid4().hex}",
    )
    env.update(settings)
    return env


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [KITH, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def running(env: dict[str, str], *args: str, redis: bool = False) -> Iterator[Server]:
    server = Server(env, *args)
    try:
        server.wait_ready(redis=redis)
        yield server
    finally:
        server.stop()


async def account(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    assert (await client.post(f"{API}/auth/register", json=body)).status_code == 201
    login = await client.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})
    assert login.status_code == 200
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def sqlite_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = base_env(tmp_path, **settings)
    migrate(env)
    return env
