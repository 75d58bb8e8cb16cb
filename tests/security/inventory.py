"""The routes the app serves, found by walking its router, and who may call each.

Used by the function-level authorization (API5) and inventory (API9) tests: both start
from what is actually served, not from the OpenAPI description, so a route added
without documentation or without an access rule shows up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIWebSocketRoute, _IncludedRouter
from starlette.routing import BaseRoute

from kith.auth.dependencies import (
    AdminUser,
    StaffUser,
    calling_app,
    current_principal,
    current_user,
    login_principal,
    mastodon_user,
)


@dataclass(frozen=True)
class ServedRoute:
    method: str  # "WS" for WebSocket routes
    path: str
    route: Any


def _walk(routes: list[BaseRoute] | list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(prefix of the including routers, route) for every leaf route."""
    for route in routes:
        if isinstance(route, _IncludedRouter):
            yield from _walk(route.effective_candidates(), route.include_context.prefix)
        else:
            yield prefix, route


def served_routes(app: FastAPI) -> list[ServedRoute]:
    """Every (method, path template) the app answers, HEAD left out (it follows GET)."""
    served = []
    for prefix, route in _walk(app.routes):
        original = getattr(route, "original_route", route)
        if isinstance(original, APIWebSocketRoute):
            served.append(ServedRoute("WS", prefix + str(original.path), route))
            continue
        path = str(getattr(route, "path_format", None) or getattr(route, "path", ""))
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                served.append(ServedRoute(method, path, route))
    return served


def _guard(alias: Any) -> Callable[..., Any]:
    dependency: Callable[..., Any] = get_args(alias)[1].dependency
    return dependency


ADMIN_GUARD = _guard(AdminUser)
STAFF_GUARD = _guard(StaffUser)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def required_access(route: ServedRoute) -> str:
    """Who the route's dependencies let in: `admin`, `staff`, `session` (a logged-in user,
    not an API key), `user` (a user by token or API key, or on the Mastodon-compatible API by
    an app token too, with a scope or without), `app` (an app's token, with or without a
    user), or `none` (no credential check)."""
    dependant = getattr(route.route, "dependant", None)
    if dependant is None:
        return "none"
    calls = set(_calls(dependant))
    from kith.media.dependencies import uploader

    if ADMIN_GUARD in calls:
        return "admin"
    if STAFF_GUARD in calls:
        return "staff"
    if login_principal in calls:
        return "session"
    if current_principal in calls or current_user in calls or uploader in calls or mastodon_user in calls:
        return "user"
    if any(getattr(call, "required_scope", None) for call in calls):
        return "user"
    if calling_app in calls:
        return "app"
    return "none"
