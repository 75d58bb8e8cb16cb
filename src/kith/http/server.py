"""The HTTP/1.1 parser Kith serves with: uvicorn's httptools protocol, keeping the authority
of an absolute-form request target (`GET http://host/path HTTP/1.1`), which uvicorn drops.

RFC 9112 (section 3.2.2) makes that authority, not the `Host` header, the host a request is
for. `kith serve` names this class as uvicorn's protocol, and the edge (`kith.http.edge.HostPolicy`)
refuses a target naming a host this server does not serve (docs/security.md).
"""

from __future__ import annotations

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kith.http.edge import TARGET_HOST


class KithHttpProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        # Origin form (`/path`) is what clients send; `*` is for OPTIONS. Anything else is
        # the absolute form, whose host the ASGI scope would otherwise lose.
        if self.url[:1] not in (b"/", b"*"):
            try:
                parsed = httptools.parse_url(self.url)
            except httptools.HttpParserInvalidURLError:
                parsed = None
            host = parsed.host if parsed is not None else None
            # An empty host (a target that does not parse) names no host we serve.
            self.scope[TARGET_HOST] = (host or b"").decode("latin-1").lower()  # type: ignore[literal-required]
        super().on_headers_complete()
