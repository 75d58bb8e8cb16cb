"""The `kith` command line: serve, migrate, create-admin, worker, export."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from kith.core.config import ConfigurationError, Settings, get_settings

app = typer.Typer(
    help="Kith: a self-hostable social network API. Settings come from KITH_* environment variables "
    "(see docs/configuration.md).",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    settings = get_settings()
    try:
        settings.resolve_secret_key()
    except ConfigurationError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    return settings


@contextlib.contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """Give the worker processes one empty multiprocess metrics directory.

    An operator's `PROMETHEUS_MULTIPROC_DIR` is emptied first (files from a previous run
    would add old counts). With several workers and none configured, a temporary one is
    made for this run and removed after it, so `/metrics` sums every worker.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield
        return
    if workers <= 1:
        yield
        return
    made = tempfile.mkdtemp(prefix="kith-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(made, ignore_errors=True)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: KITH_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: KITH_PORT, else 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: KITH_WORKERS, else 1).")
    ] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the API with uvicorn."""
    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"Kith serving on http://{shown}:{port}  (API docs: http://{shown}:{port}/docs)")
    if workers > 1 and not reload and settings.redis_url is None:
        typer.secho(
            "warning: several workers without KITH_REDIS_URL: each worker delivers live events "
            "only to its own WebSockets and counts rate limits on its own. Configure Redis to "
            "share them (docs/operations.md).",
            fg=typer.colors.YELLOW,
            err=True,
        )
    # The workers read their settings anew: they must know how many they are (without
    # Redis, one of several cannot hear of another's changes; kith.runtime.session_cache).
    os.environ["KITH_WORKERS"] = str(workers)
    with _metrics_directory(1 if reload else workers):
        _run_uvicorn(host, port, workers, reload, settings)


def _run_uvicorn(host: str, port: int, workers: int, reload: bool, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        "kith.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        ws="websockets-sansio",
        # uvicorn's httptools parser, keeping what it drops of an absolute-form target.
        http="kith.http.server:KithHttpProtocol",
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (creates the SQLite file on the embedded default)."""
    from kith.db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"Database is at migration {revision}.")


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="The admin's username.")],
    email: Annotated[str, typer.Option(help="The admin's e-mail address.")],
) -> None:
    """Create an admin account. The password is prompted for, or read from standard input."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    asyncio.run(_create_admin(_settings(), username, email, password))


async def _create_admin(settings: Settings, username: str, email: str, password: str) -> None:
    from pydantic import ValidationError

    from kith.auth import service as auth
    from kith.core.errors import DomainError
    from kith.db.models import Role
    from kith.main import open_resources
    from kith.runtime.transaction import unit_of_work

    resources = await open_resources(settings)
    try:
        async with unit_of_work(resources) as session:
            user = await auth.create_user(
                session,
                resources.passwords,
                username=username,
                email=email,
                password=password,
                role=Role.admin,
                email_verified=True,
            )
        typer.echo(f"Admin {user.username} created (id {user.id}).")
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        typer.secho(f"error: {problems}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except DomainError as error:
        typer.secho(f"error: {error.detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        await resources.close()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at the same time.")] = 50,
) -> None:
    """Run background jobs from the Redis queue and the periodic clean-ups (needs KITH_REDIS_URL)."""
    settings = _settings()
    if not settings.redis_url:
        typer.secho(
            "error: KITH_REDIS_URL is not set. Without Redis, jobs run inside `kith serve`; "
            "no worker is needed.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    from kith.core.logging import configure_logging

    configure_logging(settings)
    asyncio.run(_run_worker(settings, concurrency))


async def _run_worker(settings: Settings, concurrency: int) -> None:
    from kith.main import open_resources  # imports every domain, which registers their jobs
    from kith.runtime.periodic import PeriodicRunner

    resources = await open_resources(settings)
    periodic = PeriodicRunner(resources)
    periodic.start()
    typer.echo("Kith worker consuming jobs from Redis.")
    try:
        await resources.jobs.consume(concurrency)
    finally:
        await periodic.stop()
        await resources.close()


@app.command("export")
def export(
    user: Annotated[str, typer.Argument(help="The account: its username, e-mail address or id.")],
    email: Annotated[
        bool, typer.Option(help="E-mail the user a link when the archive is ready, as the API does.")
    ] = True,
) -> None:
    """Build an archive of a user's data now, with a progress bar (docs/export.md).

    The same archive as `POST /api/kith/v1/users/me/exports`, recorded as the user's export
    (shown in their settings, downloadable by them until it expires), without the daily
    limit. Prints the archive's path.
    """
    asyncio.run(_export(_settings(), user, email))


async def _export(settings: Settings, identifier: str, email: bool) -> None:
    from kith.core.errors import DomainError
    from kith.exports import service
    from kith.exports.archive import archive_path, build_archive
    from kith.exports.jobs import run_export
    from kith.main import open_resources
    from kith.runtime.transaction import unit_of_work

    resources = await open_resources(settings)
    try:
        try:
            async with unit_of_work(resources) as session:
                export, user = await service.export_for_operator(
                    session, identifier, now=resources.clock.now()
                )
        except DomainError as error:
            typer.secho(f"error: {identifier}: {error.detail}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        typer.echo(f"Exporting {user.username} (export {export.id})", err=True)
        with typer.progressbar(length=1, label="export", file=sys.stderr, show_pos=True) as bar:

            def advance(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)

            if email:
                ready = await run_export(resources, export.id, on_progress=advance)
            else:
                ready = await build_archive(resources, export.id, on_progress=advance)
        if ready is None:
            async with unit_of_work(resources, write=False) as session:
                failed = await service.owned_export(session, user, export.id)
            typer.secho(f"error: the export failed ({failed.error})", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        until = f"{ready.expires_at:%Y-%m-%d %H:%M} UTC"
        typer.echo(f"{archive_path(settings, export.id)}  ({ready.size} bytes, until {until})")
    finally:
        await resources.close()


def main() -> None:
    app()
