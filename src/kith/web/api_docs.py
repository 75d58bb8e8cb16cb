"""The API's interactive documentation: Swagger UI at `/docs`, served whole by Kith.

FastAPI's own page loads Swagger UI from a CDN and its icon from another site, and starts it
with an inline script. This one loads Swagger UI's files from the `swagger-ui-bundle-v2`
package and its start-up script (`static/api-docs.js`) from Kith's shelf of assets
(`kith.web.assets`), so its Content-Security-Policy names this origin alone: the page works
offline, and a visitor's browser tells no third party that it opened it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from kith.web.assets import KITH, SWAGGER_UI, send_asset

DOCS_URL = "/docs"
OPENAPI_URL = "/openapi.json"
# Swagger UI sets style attributes at run time through the CSSOM, which `style-src` does not
# govern; its style sheet draws icons from data: URLs. `connect-src 'self'` for the document
# and "Try it out". No inline script, no eval, nothing from another origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE = KITH.page(
    "api-docs.html", {"assets": KITH.base, "swagger_ui": SWAGGER_UI.base, "openapi_url": OPENAPI_URL}
)
router = APIRouter(include_in_schema=False)


@router.get(DOCS_URL, include_in_schema=False)
async def api_docs(request: Request) -> Response:
    """Swagger UI, reading the OpenAPI document of this server."""
    return await send_asset(request, PAGE, "no-cache", {"Content-Security-Policy": DOCS_CSP})
