"""What the exports' routes answer (docs/export.md)."""

from __future__ import annotations

from pydantic import Field

from kith.core.schemas import ResponseModel, Timestamp
from kith.db.models import Export, ExportStatus


class ExportView(ResponseModel):
    """An export of the caller's data, as its routes, the live stream and the CLI show it."""

    id: str
    status: ExportStatus = Field(
        description="`queued`, `running`, `ready` (the archive can be downloaded), `failed` "
        "(see `error`) or `expired` (the archive is deleted)."
    )
    progress: int = Field(ge=0, le=100, description="Percent done while it runs; 100 once ready.")
    size: int | None = Field(description="The archive's size in bytes, once ready.")
    error: str | None = Field(
        description="Why it failed: `too_large` (over the server's limit), `interrupted` "
        "(the server stopped while building it) or `build_failed` (anything else; see the server log)."
    )
    created_at: Timestamp
    finished_at: Timestamp | None
    expires_at: Timestamp | None = Field(description="When the archive is deleted, once ready.")

    @classmethod
    def of(cls, export: Export) -> ExportView:
        return cls.model_validate(export)


class DownloadLink(ResponseModel):
    """A single-use address that downloads the archive without credentials."""

    url: str = Field(description="Works once, until `expires_at`; then ask for a new one.")
    expires_at: Timestamp
