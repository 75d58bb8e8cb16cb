"""Routes of exports of the caller's data (docs/export.md)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import FileResponse

from kith.auth.dependencies import CurrentUser, LoginUser
from kith.core.config import Settings
from kith.core.pagination import CursorPage
from kith.core.urls import API_PREFIX, absolute_url
from kith.db.models import Export
from kith.exports import service
from kith.exports.archive import archive_path
from kith.exports.dependencies import OwnedExport
from kith.exports.schemas import DownloadLink, ExportView
from kith.http.deps import AppSettings, Now, Transaction
from kith.http.errors import problem_responses
from kith.http.idempotency import IdempotencyDep
from kith.http.pagination import CursorDep
from kith.http.session import DbSession

router = APIRouter(prefix="/users/me/exports", tags=["exports"])
downloads = APIRouter(tags=["exports"])

_ARCHIVE_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The zip archive.",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _archive(settings: Settings, export: Export, username: str) -> FileResponse:
    day = export.finished_at.strftime("%Y-%m-%d") if export.finished_at else "export"
    path = archive_path(settings, export.id)
    if not path.is_file():
        # Ready in the database but gone from disk (removed by hand): as good as expired.
        raise service.ExportExpired()
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"kith-{username}-{day}.zip",
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "",
    operation_id="createExport",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExportView,
    responses=problem_responses(401, 403, 429),
)
async def create_export(
    idempotency: IdempotencyDep,
    response: Response,
    user: LoginUser,
    session: DbSession,
    settings: AppSettings,
    now: Now,
) -> object:
    """Ask for an archive of your data: 202 with the export, built in the background.

    Follow it with `GET /users/me/exports/{id}` or the live stream's `export` events; an
    e-mail with a link to your settings comes when it is ready. One export a day: 429
    `export_too_soon` with `Retry-After` within 24 hours of the last one that did not fail.
    Needs a login (not an API key).
    """
    if idempotency.replay is not None:
        return idempotency.replay
    export = await service.request_export(session, user, settings, now=now)
    response.headers["Location"] = absolute_url(f"{API_PREFIX}/users/me/exports/{export.id}")
    return await idempotency.answer(session, ExportView.of(export))


@router.get(
    "",
    operation_id="listExports",
    response_model=CursorPage[ExportView],
    responses=problem_responses(401, 422),
)
async def list_exports(user: CurrentUser, session: DbSession, page: CursorDep) -> object:
    """Your exports, newest first, expired and failed ones included."""
    found, next_cursor = await service.list_exports(session, user, page.params)
    return page.page([ExportView.of(export) for export in found], next_cursor)


@router.get(
    "/{export_id}",
    operation_id="getExport",
    response_model=ExportView,
    responses=problem_responses(401, 404),
)
async def get_export(export: OwnedExport) -> object:
    """One of your exports, with its `status` and `progress`. 404 `export_not_found`."""
    return ExportView.of(export)


@router.get(
    "/{export_id}/archive",
    operation_id="downloadExport",
    response_class=FileResponse,
    responses={**_ARCHIVE_RESPONSE, **problem_responses(401, 404, 409, 410)},
)
async def download_export(
    export: OwnedExport, user: CurrentUser, settings: AppSettings, now: Now
) -> Response:
    """The archive (`application/zip`), with your credentials. 409 `export_not_ready` while it
    is built or when it failed; 410 `export_expired` once it is deleted."""
    service.check_downloadable(export, now)
    return _archive(settings, export, user.username)


@router.post(
    "/{export_id}/links",
    operation_id="createExportDownloadLink",
    status_code=status.HTTP_201_CREATED,
    response_model=DownloadLink,
    responses=problem_responses(401, 403, 404, 409, 410),
)
async def create_download_link(
    user: LoginUser, export: OwnedExport, settings: AppSettings, now: Now
) -> object:
    """A single-use address that downloads the archive without credentials, for a browser's
    download (which cannot send a bearer token). It works once, for
    `KITH_EXPORT_LINK_TTL_SECONDS` (10 minutes); a new one replaces the last. Only the
    export's owner, signed in, can get one. 409 `export_not_ready`, 410 `export_expired`."""
    url, expires_at = service.issue_link(export, settings, now=now)
    return DownloadLink(url=url, expires_at=expires_at)


@downloads.get(
    service.DOWNLOAD_PATH + "{token}",
    operation_id="downloadExportByLink",
    response_class=FileResponse,
    responses={**_ARCHIVE_RESPONSE, **problem_responses(410)},
)
async def download_by_link(token: str, transaction: Transaction, settings: AppSettings, now: Now) -> Response:
    """The archive behind a link from `POST /users/me/exports/{id}/links`; no credentials
    needed. The link is spent by this request: asked again, or after it expired, or once a
    newer link replaced it, it is 410 `download_link_invalid`."""
    if len(token) > 100:
        raise service.InvalidDownloadLink()
    # A write of its own: a GET's session takes no write lock, and the link must be spent
    # (committed) before the archive is sent.
    async with transaction() as session:
        export = await service.redeem_link(session, token, now=now)
        username = await service.owner_name(session, export)
    return _archive(settings, export, username)
