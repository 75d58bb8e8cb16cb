"""Liveness and readiness (docs/api.md#operations)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from kith.db.engine import pool_capacity
from kith.http.session import ResourcesDep
from kith.runtime.resources import Resources

router = APIRouter(tags=["operations"])


Check = Literal["ok", "failed", "exhausted", "not_configured"]


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, Check]


def _pool_exhausted(resources: Resources) -> bool:
    """Whether every connection the PostgreSQL pool may open is checked out
    (`kith.db.engine.pool_capacity`). SQLite's pool is not a limit that way."""
    if resources.engine.dialect.name != "postgresql":
        return False
    checked_out = getattr(resources.engine.pool, "checkedout", None)
    return callable(checked_out) and checked_out() >= pool_capacity(resources.settings)


@router.get("/healthz", operation_id="getLiveness", response_model=Health)
async def healthz() -> Health:
    """200 while the process runs."""
    return Health(status="ok", checks={})


@router.get(
    "/readyz",
    operation_id="getReadiness",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database down, or its pool exhausted."}},
)
async def readyz(resources: ResourcesDep) -> object:
    """200 when the database answers, else 503. A configured Redis that does not answer
    makes the status `degraded` inside a 200: the API keeps working without it.

    While every pooled PostgreSQL connection is in use (`database: exhausted`) the answer is
    503 at once: a request arriving now would wait for the pool, and past the pool timeout
    fail, so a load balancer should send it elsewhere until one is free."""
    checks: dict[str, Check] = {}
    if _pool_exhausted(resources):
        checks["database"] = "exhausted"
    else:
        try:
            async with resources.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "failed"
    if resources.redis is None:
        checks["redis"] = "not_configured"
    else:
        try:
            await resources.redis.ping()
            checks["redis"] = "ok"
        except Exception:
            checks["redis"] = "failed"
    if checks["database"] != "ok":
        return JSONResponse(Health(status="unavailable", checks=checks).model_dump(), status_code=503)
    return Health(status="degraded" if checks["redis"] == "failed" else "ok", checks=checks)
