"""Liveness and readiness (docs/api.md#operations)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from kith.http.session import ResourcesDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, Literal["ok", "failed", "not_configured"]]


@router.get("/healthz", operation_id="getLiveness", response_model=Health)
async def healthz() -> Health:
    """200 while the process runs."""
    return Health(status="ok", checks={})


@router.get(
    "/readyz",
    operation_id="getReadiness",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database down."}},
)
async def readyz(resources: ResourcesDep) -> object:
    """200 when the database answers, else 503. A configured Redis that does not answer
    makes the status `degraded` inside a 200: the API keeps working without it."""
    checks: dict[str, Literal["ok", "failed", "not_configured"]] = {}
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
    if checks["database"] == "failed":
        return JSONResponse(Health(status="unavailable", checks=checks).model_dump(), status_code=503)
    return Health(status="degraded" if checks["redis"] == "failed" else "ok", checks=checks)
