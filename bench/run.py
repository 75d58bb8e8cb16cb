"""The benchmark run: data sets, servers, load, measurements, results.

    .venv/bin/python -m bench run --profile quick        # a few minutes, small data set
    .venv/bin/python -m bench run --profile full --docs  # the recorded run (see docs/benchmarks.md)

For each configuration (SQLite; PostgreSQL; PostgreSQL + Redis with two workers) the run
starts the ceiling app and then Kith in the same server setup, drives every scenario
with wrk from a separate process pinned to another core, and records requests per
second, latency, the server's CPU per request and its peak RSS per worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import prepare, profiling, report
from bench import wrk as load
from bench.procs import Server, cpu_of, peak_rss_mb, reset_peak_rss
from bench.report import LABELS
from bench.seed import DataSetSpec, ensure, restore
from kith.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/3"
SERVER_CPUS = "0"
LOAD_CPUS = "1"


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataSetSpec
    growth_posts: int
    duration_s: float
    warmup_s: float
    connections: int
    deep_page: int
    token_users: int
    deep_readers: int


PROFILES = {
    "quick": Profile(
        name="quick",
        data=DataSetSpec(users=2_000, friends=50, posts=50_000),
        growth_posts=20_000,
        duration_s=3,
        warmup_s=1,
        connections=8,
        deep_page=20,
        token_users=60,
        deep_readers=10,
    ),
    "full": Profile(
        name="full",
        data=DataSetSpec(users=10_000, friends=200, posts=1_000_000),
        growth_posts=100_000,
        duration_s=10,
        warmup_s=3,
        connections=16,
        deep_page=50,
        token_users=200,
        deep_readers=40,
    ),
}


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    expected: frozenset[int]


SCENARIOS = [
    Scenario("feed_p1", "Feed, page 1", frozenset({200})),
    Scenario("feed_deep", "Feed, deep page (cursor)", frozenset({200})),
    Scenario("post_view", "Post with comments", frozenset({200})),
    Scenario("create_post", "Create post", frozenset({201})),
    Scenario("like_unlike", "Like and unlike", frozenset({200, 201, 204})),
    Scenario("comment", "Comment", frozenset({201})),
    Scenario("friend", "Friend request and accept", frozenset({200, 201})),
    Scenario("mixed", "Mix: 80 % reads, 20 % writes", frozenset({200, 201, 204})),
    Scenario("login", "Login", frozenset({200})),
]
BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}
# The ceiling making Kith's feed round trips (bench/ceiling.py), PostgreSQL configurations only:
# key -> the app and which of Kith's feed statements it runs.
ROUND_TRIP_CEILINGS = {
    "ceiling_db1": ("bench.ceiling:create_round_trip_app", "feed"),
    "ceiling_db": ("bench.ceiling:create_round_trip_app", "all"),
    "floor_data_layer": ("bench.ceiling:create_data_layer_app", "feed"),
}


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    database: str  # "sqlite" or "postgres"
    redis: bool
    workers: int
    server_cpus: str | None  # taskset list, None: unpinned
    scenarios: tuple[str, ...] = tuple(scenario.key for scenario in SCENARIOS)
    login_flood: bool = True
    write_growth: bool = False
    growth_data: bool = False  # runs on the smaller growth data set
    timelines: bool = False  # KITH_FEED_TIMELINES: precomputed feeds in Redis (needs `redis`)


CONFIGS = [
    Config("sqlite", "SQLite (embedded default), 1 worker", "sqlite", False, 1, SERVER_CPUS),
    Config("postgres", "PostgreSQL, 1 worker", "postgres", False, 1, SERVER_CPUS, write_growth=True),
    Config(
        "postgres_small",
        "PostgreSQL, 1 worker, growth data set",
        "postgres",
        False,
        1,
        SERVER_CPUS,
        scenarios=("feed_p1", "feed_deep"),
        login_flood=False,
        growth_data=True,
    ),
    Config("postgres_redis", "PostgreSQL + Redis, 2 workers", "postgres", True, 2, None),
    # Redis's own cost on a request: the same one pinned worker as `postgres`, Redis configured.
    Config(
        "postgres_redis_1",
        "PostgreSQL + Redis, 1 worker",
        "postgres",
        True,
        1,
        SERVER_CPUS,
        scenarios=("feed_p1", "create_post"),
        login_flood=False,
    ),
    # The same with the feed's Redis timelines on (off by default): what they cost and save.
    Config(
        "postgres_timelines_1",
        "PostgreSQL + Redis timelines, 1 worker",
        "postgres",
        True,
        1,
        SERVER_CPUS,
        scenarios=("feed_p1", "create_post"),
        login_flood=False,
        write_growth=True,
        timelines=True,
    ),
]


@dataclass
class Measurement:
    """One scenario's figures in one configuration."""

    config: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_ms_per_request: float
    peak_rss_mb: float
    unexpected: int
    statuses: dict[int, int]
    ratio_to_ceiling: float | None = None
    helper_cpu_ms_per_request: float | None = None
    note: str = ""


@dataclass
class RunResults:
    profile: str
    server: str
    started_at: str
    machine: dict[str, Any]
    load_average_before: tuple[float, float, float]
    data_sets: dict[str, Any]
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    login_flood: dict[str, dict[str, Any]] = field(default_factory=dict)
    write_growth: list[dict[str, Any]] = field(default_factory=list)
    finished_at: str = ""

    def find(self, config: str, scenario: str) -> Measurement | None:
        for item in self.measurements:
            if item.config == config and item.scenario == scenario:
                return item
        return None


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def database_url(profile: Profile, config: Config) -> str:
    posts = profile.growth_posts if config.growth_data else profile.data.posts
    if config.database == "sqlite":
        return f"sqlite+aiosqlite:///{ROOT / 'var' / 'bench' / f'kith_bench_{profile.name}_{posts}.db'}"
    return f"{PG}/kith_bench_{profile.name}_{posts}"


def data_spec(profile: Profile, config: Config) -> DataSetSpec:
    return replace(profile.data, posts=profile.growth_posts) if config.growth_data else profile.data


def server_env(url: str, config: Config, secret: str, var_dir: Path) -> dict[str, str]:
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "KITH_ENV": "production",
        "KITH_SECRET_KEY": secret,
        "KITH_DATABASE_URL": url,
        "KITH_VAR_DIR": str(var_dir),
        "KITH_RATE_LIMITS_ENABLED": "false",
        "KITH_ACCESS_TOKEN_TTL_SECONDS": "7200",
        "KITH_LOG_LEVEL": "INFO",
    }
    if config.redis:
        env["KITH_REDIS_URL"] = REDIS_URL
    if config.timelines:
        env["KITH_FEED_TIMELINES"] = "true"
    if os.environ.get("PYTHONPATH"):
        # Lets a run measure another checkout's src/ (before-and-after comparisons).
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def server_command(server: str, app: str, port: int, workers: int, cpus: str | None) -> list[str]:
    """How an operator starts it: `kith serve` (uvicorn) or granian; the ceiling the same way."""
    if server == "granian":
        line = [
            str(BIN / "granian"),
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--no-ws",
            "--log-level",
            "warning",
            "--factory",
            app,
        ]
    elif app == "kith.main:create_app":
        line = [
            str(BIN / "kith"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    else:
        # The same uvicorn options as `kith serve` (uvloop, httptools, no access log).
        line = [
            str(BIN / "uvicorn"),
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ]
    return ["taskset", "-c", cpus, *line] if cpus else line


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.profile = PROFILES[args.profile]
        if args.duration:
            self.profile = replace(self.profile, duration_s=args.duration)
        self.server = args.server
        self.configs = [config for config in CONFIGS if not args.configs or config.key in args.configs]
        self.scenarios = set(args.scenarios or [*BY_KEY, *ROUND_TRIP_CEILINGS])
        self.out = Path(args.out) if args.out else ROOT / "bench" / "results" / self.profile.name
        self.work = ROOT / "var" / "bench" / "run"
        self.secret = secrets.token_urlsafe(48)
        self.rng = random.Random(time.time_ns())
        self.port = 18_600
        self.py_spy = bool(args.py_spy)
        # The data sets a configuration of this run has used (and written to) already.
        self._used_data_sets: set[str] = set()
        self.results = RunResults(
            profile=self.profile.name,
            server=self.server,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            machine=machine(),
            load_average_before=os.getloadavg(),
            data_sets={},
        )

    # --- measuring ---------------------------------------------------------------------

    def measure(
        self,
        server: Server,
        config: Config,
        scenario: Scenario,
        data: Path | None,
        *,
        base_url: str | None = None,
        connections: int | None = None,
        helper_drain: bool = False,
    ) -> Measurement:
        """Warm up, then one timed wrk run; CPU and peak RSS read around it."""
        url = base_url or server.base_url
        connections = connections or self.profile.connections
        if self.profile.warmup_s:
            load.finish(
                load.start(
                    url,
                    scenario.key,
                    data,
                    duration_s=self.profile.warmup_s,
                    connections=connections,
                    cpus=LOAD_CPUS,
                    extra_env={"BENCH_PAIR_SLICE": "0/2"},
                ),
                timeout=self.profile.warmup_s + 60,
            )
        pids = server.pids()
        for pid in pids:
            reset_peak_rss(pid)
        helpers = server.extra_pids()
        cpu_before, helper_before = cpu_of(pids), cpu_of(helpers)
        spy = (
            profiling.start(
                pids[0], self.out / "profiles" / f"{config.key}-{scenario.key}", self.profile.duration_s
            )
            if self.py_spy and not scenario.key.startswith(("ceiling", "floor"))
            else None
        )
        result = load.finish(
            load.start(
                url,
                scenario.key,
                data,
                duration_s=self.profile.duration_s,
                connections=connections,
                cpus=LOAD_CPUS,
                extra_env={"BENCH_PAIR_SLICE": "1/2"},
            ),
            timeout=self.profile.duration_s + 60,
        )
        cpu = cpu_of(pids) - cpu_before
        if spy is not None:
            profiling.finish(spy)
        helper_cpu = None
        if helpers:
            if helper_drain:
                wait_until_idle(helpers)
            helper_cpu = cpu_of(helpers) - helper_before
        requests = max(result.requests, 1)
        measurement = Measurement(
            config=config.key,
            scenario=scenario.key,
            rps=round(result.rps, 1),
            p50_ms=round(result.p50_ms, 2),
            p99_ms=round(result.p99_ms, 2),
            requests=result.requests,
            cpu_ms_per_request=round(cpu * 1000 / requests, 3),
            peak_rss_mb=round(max((peak_rss_mb(pid) for pid in pids), default=0.0), 1),
            unexpected=result.unexpected(scenario.expected),
            statuses=result.statuses,
            helper_cpu_ms_per_request=round(helper_cpu * 1000 / requests, 3)
            if helper_cpu is not None
            else None,
            note="friend pairs ran out" if result.pairs_exhausted else "",
        )
        log(
            f"  {config.key:<15} {scenario.key:<12} {measurement.rps:>8.1f} req/s  p50 {measurement.p50_ms:>7.2f} ms"
            f"  p99 {measurement.p99_ms:>7.2f} ms  cpu {measurement.cpu_ms_per_request:.2f} ms/req"
            f"  rss {measurement.peak_rss_mb:.0f} MB  statuses {result.statuses}"
        )
        return measurement

    def next_port(self) -> int:
        self.port += 1
        return self.port

    def start_server(
        self, config: Config, app: str, url: str, extra_env: dict[str, str] | None = None
    ) -> Server:
        var_dir = ROOT / "var" / "bench" / "servers" / config.key
        env = server_env(url, config, self.secret, var_dir) | (extra_env or {})
        port = self.next_port()
        server = Server(
            name=f"{app} ({config.key})",
            command=server_command(self.server, app, port, config.workers, config.server_cpus),
            port=port,
            env=env,
            log_path=ROOT / "var" / "bench" / "logs" / f"{config.key}-{app.split('.')[0]}-{port}.log",
        )
        server.start()
        if config.redis and app == "kith.main:create_app":
            server.start_extra([str(BIN / "kith"), "worker"], env)
        return server

    # --- one configuration ---------------------------------------------------------------

    def run_config(self, config: Config) -> None:
        url = database_url(self.profile, config)
        spec = data_spec(self.profile, config)
        if url in self._used_data_sets:
            # An earlier configuration wrote to it (its posts would top every feed here).
            asyncio.run(restore(url))
        self._used_data_sets.add(url)
        if config.redis:
            redis.Redis.from_url(REDIS_URL).flushdb()
        self.results.configs[config.key] = {
            "label": config.label,
            "database": config.database,
            "data_set": spec.describe(),
            "redis": config.redis,
            "timelines": config.timelines,
            "workers": config.workers,
            "server_cpus": config.server_cpus or "unpinned (0-1)",
            "load_cpus": LOAD_CPUS,
            "connections": self.profile.connections,
            "duration_s": self.profile.duration_s,
            "warmup_s": self.profile.warmup_s,
            "load_average_at_start": os.getloadavg(),
        }
        log(f"{config.label}: ceiling")
        ceiling = self.start_server(config, "bench.ceiling:create_app", url)
        try:
            ceiling_result = self.measure(
                ceiling, config, Scenario("ceiling", "Ceiling", frozenset({200})), None
            )
        finally:
            ceiling.stop()
        self.results.measurements.append(ceiling_result)
        if config.database == "postgres":
            self.round_trip_ceilings(config, url, ceiling_result.rps)

        log(f"{config.label}: Kith")
        server = self.start_server(config, "kith.main:create_app", url)
        try:
            settings = Settings(
                database_url=url, secret_key=self.secret, access_token_ttl_seconds=7200, _env_file=None
            )
            regular = [
                f"user{index}" for index in self.rng.sample(range(spec.users), self.profile.token_users)
            ]
            ids = asyncio.run(prepare.user_ids_by_name(settings, regular))
            data = asyncio.run(
                prepare.load_data(
                    settings,
                    server.base_url,
                    [ids[name] for name in regular],
                    rng=self.rng,
                    deep_page=self.profile.deep_page,
                    # Walking to a deep page is slow on SQLite at this size: fewer readers there.
                    deep_readers=self.profile.deep_readers if config.database == "postgres" else 8,
                    logins=[f"user{index}" for index in self.rng.sample(range(spec.users), 200)],
                )
            )
            data_file = data.write(self.work / f"{config.key}.tsv")
            for key in config.scenarios:
                if key in self.scenarios:
                    item = self.measure(server, config, BY_KEY[key], data_file)
                    item.ratio_to_ceiling = round(item.rps / ceiling_result.rps, 3)
                    self.results.measurements.append(item)
            if config.login_flood and "login" in self.scenarios:
                self.login_flood(server, config, data_file)
            if config.write_growth and "create_post" in self.scenarios:
                self.write_growth(server, config, settings, ceiling_result.rps)
        finally:
            server.stop()

    def round_trip_ceilings(self, config: Config, url: str, ceiling_rps: float) -> None:
        """The ceiling making Kith's feed round trips: only the feed query, then both."""
        for key, (app, statements) in ROUND_TRIP_CEILINGS.items():
            if key not in self.scenarios:
                continue
            log(f"{config.label}: {LABELS[key]}")
            server = self.start_server(
                config,
                app,
                url,
                {"BENCH_CEILING_DATABASE_URL": url, "BENCH_CEILING_STATEMENTS": statements},
            )
            try:
                item = self.measure(server, config, Scenario(key, LABELS[key], frozenset({200})), None)
            finally:
                server.stop()
            item.ratio_to_ceiling = round(item.rps / ceiling_rps, 3)
            self.results.measurements.append(item)

    def login_flood(self, server: Server, config: Config, data_file: Path) -> None:
        """Feed p99 at a steady rate, alone and while logins hammer the same server."""
        feed = self.results.find(config.key, "feed_p1")
        connections = 4
        # A steady load at about a third of what the feed sustains.
        rate = max(10.0, (feed.rps if feed else 150.0) / 3)
        delay_ms = connections * 1000 / rate
        figures: dict[str, Any] = {
            "feed_connections": connections,
            "feed_delay_ms": round(delay_ms, 1),
            "login_connections": self.profile.connections,
        }
        for label, flood in (("alone", False), ("during_login_flood", True)):
            flood_process = None
            if flood:
                flood_process = load.start(
                    server.base_url,
                    "login",
                    data_file,
                    duration_s=self.profile.duration_s + 2,
                    connections=self.profile.connections,
                    cpus=LOAD_CPUS,
                )
                time.sleep(1.0)
            feed_process = load.start(
                server.base_url,
                "feed_p1",
                data_file,
                duration_s=self.profile.duration_s,
                connections=connections,
                cpus=LOAD_CPUS,
                delay_ms=delay_ms,
            )
            result = load.finish(feed_process, timeout=self.profile.duration_s + 60)
            figures[label] = {
                "rps": round(result.rps, 1),
                "p50_ms": round(result.p50_ms, 2),
                "p99_ms": round(result.p99_ms, 2),
                "unexpected": result.unexpected(frozenset({200})),
            }
            if flood_process is not None:
                logins = load.finish(flood_process, timeout=self.profile.duration_s + 60)
                figures["logins"] = {
                    "rps": round(logins.rps, 1),
                    "p50_ms": round(logins.p50_ms, 2),
                    "p99_ms": round(logins.p99_ms, 2),
                    "unexpected": logins.unexpected(frozenset({200})),
                }
            log(f"  {config.key:<15} feed {label}: p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms")
        figures["p99_ratio"] = round(
            figures["during_login_flood"]["p99_ms"] / max(figures["alone"]["p99_ms"], 0.01), 2
        )
        self.results.login_flood[config.key] = figures

    def write_growth(self, server: Server, config: Config, settings: Settings, ceiling_rps: float) -> None:
        """Create-post cost by authors with 10, 200 and 2,000 friends (their timelines warm, with
        Redis timelines on)."""
        from bench.seed import AUTHOR_AUDIENCES

        names = [f"author{audience}" for audience in AUTHOR_AUDIENCES]
        authors = asyncio.run(prepare.user_ids_by_name(settings, names))
        for audience, name in zip(AUTHOR_AUDIENCES, names, strict=True):
            author_id = authors[name]
            if config.timelines:
                friends = asyncio.run(prepare.friends_of(settings, author_id))
                tokens = asyncio.run(prepare.mint_tokens(settings, friends))
                asyncio.run(prepare.read_feeds(server.base_url, tokens))  # builds their timelines
            token = asyncio.run(prepare.mint_tokens(settings, [author_id]))[0]
            data_file = prepare.LoadData(tokens=[(token, author_id)]).write(
                self.work / f"{config.key}-{name}.tsv"
            )
            item = self.measure(server, config, BY_KEY["create_post"], data_file, helper_drain=True)
            item.ratio_to_ceiling = round(item.rps / ceiling_rps, 3)
            self.results.write_growth.append({"friends": audience, **asdict(item)})

    # --- the whole run -------------------------------------------------------------------

    def build_data(self) -> None:
        for config in self.configs:
            url = database_url(self.profile, config)
            if url in self.results.data_sets:
                continue
            spec = data_spec(self.profile, config)
            started = time.perf_counter()
            built = asyncio.run(ensure(url, spec))
            self.results.data_sets[url.rsplit("/", 1)[-1]] = {
                "spec": asdict(spec),
                "built": built,
                "seconds": round(time.perf_counter() - started, 1),
            }

    def run(self, *, docs: bool, wait_load: float, wait_timeout: float) -> None:
        self.build_data()
        if wait_load:
            wait_for_quiet(wait_load, wait_timeout)
        self.results.load_average_before = os.getloadavg()
        postgres = next((c for c in self.configs if c.database == "postgres"), None)
        if postgres is not None:
            self.results.machine["postgres_round_trip"] = asyncio.run(
                round_trip_cost(database_url(self.profile, postgres))
            )
        # What no change to Kith can go below, measured in this run: SQLite's own work for a
        # feed page (it runs in the server's process), and the fan-out's push alone.
        lite = next((c for c in self.configs if c.database == "sqlite" and not c.growth_data), None)
        if lite is not None:
            from bench.sqlite_plan import page_statement_ms

            lite_file = database_url(self.profile, lite).removeprefix("sqlite+aiosqlite:///")
            self.results.machine["sqlite_page_statement_ms"] = round(page_statement_ms(lite_file), 3)
        if any(c.timelines for c in self.configs):
            from bench.fanout import push_cost

            push_ms, warm = asyncio.run(push_cost("redis://127.0.0.1:6379/5", readers=2000))
            self.results.machine["fanout_push"] = {"readers": 2000, "warm": warm, "cpu_ms": round(push_ms, 3)}
        for config in self.configs:
            self.run_config(config)
        self.results.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "results.json"
        path.write_text(json.dumps(asdict(self.results), indent=2, default=str) + "\n")
        report.write(self.results_dict(), self.out, docs=ROOT / "docs" / "benchmarks.md" if docs else None)
        log(f"results in {path}")

    def results_dict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(json.dumps(asdict(self.results), default=str))
        return loaded


async def round_trip_cost(url: str, count: int = 3000) -> dict[str, float]:
    """What one trivial PostgreSQL round trip costs a client here (asyncpg, `SELECT 1`)."""
    import asyncpg

    parsed = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(parsed)
    try:
        for _ in range(200):
            await connection.fetchval("SELECT 1")
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            await connection.fetchval("SELECT 1")
        return {
            "client_cpu_us": round((time.process_time() - cpu) / count * 1e6, 1),
            "wall_us": round((time.perf_counter() - wall) / count * 1e6, 1),
        }
    finally:
        await connection.close()


def wait_until_idle(pids: Sequence[int], *, quiet_s: float = 1.0, timeout: float = 60.0) -> None:
    """Until the processes stop using CPU (the job worker has drained its queue)."""
    deadline = time.monotonic() + timeout
    last = cpu_of(pids)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_of(pids)
        if now - last < 0.02 * quiet_s:
            return
        last = now


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import kith

    # The code measured: normally this checkout, another one when PYTHONPATH points there.
    kith_root = Path(kith.__file__).resolve().parents[2]
    kith_commit = subprocess.run(
        ["git", "-C", str(kith_root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
        "kith_source": f"{kith_root} at {kith_commit}",
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
        "pinning": f"server on CPU {SERVER_CPUS} where stated (taskset), wrk on CPU {LOAD_CPUS}; "
        "PostgreSQL and Redis unpinned",
    }


def wait_for_quiet(threshold: float, timeout_s: float, poll_s: float = 30.0) -> None:
    """Wait until the 1-minute load average drops below `threshold` (others share the machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        load1 = os.getloadavg()[0]
        if load1 < threshold:
            log(f"load average {load1:.2f} < {threshold}: starting")
            return
        if time.monotonic() >= deadline:
            log(f"load average still {load1:.2f} after {timeout_s:.0f} s: starting anyway (recorded)")
            return
        log(f"load average {load1:.2f} >= {threshold}: waiting {poll_s:.0f} s")
        time.sleep(poll_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--configs", nargs="*", choices=[config.key for config in CONFIGS])
    parser.add_argument("--scenarios", nargs="*", choices=sorted([*BY_KEY, *ROUND_TRIP_CEILINGS]))
    parser.add_argument("--duration", type=float, help="Seconds per scenario (overrides the profile).")
    parser.add_argument("--out", help="Results directory (default bench/results/<profile>).")
    parser.add_argument(
        "--docs", action="store_true", help="Rewrite the results section of docs/benchmarks.md."
    )
    parser.add_argument(
        "--wait-load",
        type=float,
        default=0.0,
        help="Wait (up to --wait-timeout) for the 1-minute load average to drop below this.",
    )
    parser.add_argument("--wait-timeout", type=float, default=1200.0)
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="Sample Kith's server with py-spy during each timed run: collapsed stacks (for speedscope "
        "or flamegraph.pl) and a table of the hottest functions per scenario in <out>/profiles/ "
        "(the sampling costs the server some CPU).",
    )


def main(args: argparse.Namespace) -> None:
    Runner(args).run(docs=args.docs, wait_load=args.wait_load, wait_timeout=args.wait_timeout)
