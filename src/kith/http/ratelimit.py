"""Rate limits (docs/api.md#conventions), on the `limits` library, attached declaratively.

- The general limit (`KITH_RATE_LIMIT_GENERAL`) counts every request under Kith's API
  prefix (`kith.core.urls.API_PREFIX`) and the Mastodon-compatible API's (`/api/v1`,
  `/api/v2`) per user, or per IP when anonymous.
  `RateLimitMiddleware` checks it before routing, so unknown paths, redirects and any
  spelling of a path count too.
- Named limits guard single routes as dependencies: `dependencies=[rate_limit("posts")]`.
  They run before the route's own dependencies, so before any costly work.
- Failed logins are counted by `LoginThrottle` (`kith.runtime.limits`, built for each
  request by `login_throttle`), checked after the account lookup and before the password hash.

Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (of the limit closest to running out); a 429 adds `Retry-After`. On the
Mastodon-compatible paths the same limit is also told as Mastodon tells it, in
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (an ISO 8601 time), which
Mastodon apps and libraries read to pace themselves.

Counters live in Redis when it is configured (shared by every worker and instance),
else in process memory. When Redis fails, limits marked `falls_back` (login,
registration, password reset, uploads) count in process memory instead: looser, never
absent; the others let requests through. Redis is then left alone for
`KITH_RATE_LIMIT_REDIS_RETRY_SECONDS`, so an outage costs at most one timeout now and then.

Moderators get `KITH_RATE_LIMIT_MODERATOR_FACTOR` times every per-user limit; admins
are not limited by per-user limits at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kith.core.mail import normalize_address
from kith.core.urls import API_PREFIX, MASTODON_API_PREFIXES, OAUTH_PREFIX, mastodon_face
from kith.db.models import Role
from kith.http.caller import Caller, identify_caller
from kith.http.errors import problem_response
from kith.runtime import limits as runtime_limits
from kith.runtime.limits import RULES, LoginThrottle, Outcome, refuse

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

# Kith's API and the Mastodon-compatible one with its sign-in: the APIs, unknown paths under
# them included.
_LIMITED_PREFIXES = (f"{API_PREFIX}/", *MASTODON_API_PREFIXES, OAUTH_PREFIX)
_STATE_KEY = "kith_rate_limits"


# --- recording outcomes on the request, and the headers they give -----------------------------


def _record(scope: Scope, outcome: Outcome | None) -> None:
    if outcome is not None:
        scope.setdefault("state", {}).setdefault(_STATE_KEY, []).append(outcome)


def _closest(outcomes: list[Outcome]) -> Outcome:
    refused = [outcome for outcome in outcomes if not outcome.allowed]
    if refused:
        return max(refused, key=lambda outcome: outcome.reset_after)
    return min(outcomes, key=lambda outcome: (outcome.remaining, -outcome.reset_after))


def _known_role(name: str | None) -> Role | None:
    return Role(name) if name is not None and name in Role.__members__ else None


async def _counted(resources: Resources, rule: str, caller: Caller) -> Outcome | None:
    limiter = resources.limiter
    if RULES[rule].keyed_by == "ip" or caller.user_id is None:
        return await limiter.hit(rule, f"ip:{caller.ip_group}")
    # An access token names the role; an API key's owner is looked up (and cached).
    role = _known_role(caller.role) or await limiter.roles.role_of(resources, caller.user_id)
    return await limiter.hit(rule, caller.limit_key, role)


class RateLimitMiddleware:
    """Counts every API request against the general limit and adds the `RateLimit-*` headers.

    Inside CORS, so a browser can read a 429; the headers come from every limit the
    request was counted against, its route's included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not counts_against_general_limit(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        resources: Resources = scope["app"].state.resources
        caller = await identify_caller(scope, resources)
        outcome = await _counted(resources, "general", caller)
        _record(scope, outcome)
        if outcome is not None and not outcome.allowed:
            error = refuse(outcome)
            response = problem_response(StarletteRequest(scope), error)
            await response(scope, receive, self._with_headers(scope, send))
            return
        await self.app(scope, receive, self._with_headers(scope, send))

    @staticmethod
    def _with_headers(scope: Scope, send: Send) -> Send:
        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcomes: list[Outcome] = scope.get("state", {}).get(_STATE_KEY, [])
                if outcomes:
                    closest = _closest(outcomes)
                    headers = closest.headers()
                    if mastodon_face(scope["path"]) is not None:
                        headers |= mastodon_headers(closest, runtime_limits.wall_time())
                    extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return send_with_limits


def mastodon_headers(outcome: Outcome, now: float) -> dict[str, str]:
    """A limit as Mastodon tells it: the reset as the time it comes, UTC, in milliseconds.

    `now` is the wall clock's (seconds since the epoch), as the counters' windows are.
    """
    reset = datetime.fromtimestamp(now, UTC) + timedelta(seconds=max(0.0, outcome.reset_after))
    return {
        "X-RateLimit-Limit": str(outcome.limit),
        "X-RateLimit-Remaining": str(max(0, outcome.remaining)),
        "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def counts_against_general_limit(method: str, path: str) -> bool:
    """Whether a request is counted by the general limit (every API request but preflights)."""
    # CORS preflights must not eat the budget of the request they precede. Only the API is
    # limited: health checks, docs, metrics and media files (fetched by URL, often many a
    # page, static) are not.
    return method != "OPTIONS" and path.lower().startswith(_LIMITED_PREFIXES)


# --- route dependencies ----------------------------------------------------------------------

KeyOf = Callable[[Request, Caller], Awaitable[str | None]]


async def body_email(request: Request, _caller: Caller) -> str | None:
    """The e-mail address in a JSON body, normalised; None when there is none (422 follows)."""
    try:
        body = await request.json()
    except ValueError:
        return None
    email = body.get("email") if isinstance(body, dict) else None
    # The same spelling the account lookup uses, so no spelling of one address gets fresh limits.
    normalized = normalize_address(email) if isinstance(email, str) else ""
    return f"email:{normalized}" if normalized else None


def rate_limit(rule: str, key: KeyOf | None = None) -> Any:
    """A route dependency that counts the request against the named limit, or answers 429.

    `key` picks what the limit counts (by default the caller: the user, or the IP).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rate limit {rule!r}")

    async def check_limit(request: Request) -> None:
        resources: Resources = request.app.state.resources
        if not resources.limiter.enabled:
            return
        caller = await identify_caller(request.scope, resources)
        if key is None:
            outcome = await _counted(resources, rule, caller)
        else:
            counted = await key(request, caller)
            outcome = None if counted is None else await resources.limiter.hit(rule, counted)
        _record(request.scope, outcome)
        if outcome is not None and not outcome.allowed:
            raise refuse(outcome)

    return Depends(check_limit)


async def login_throttle(request: Request) -> LoginThrottle:
    """The failed-login throttle for this request's caller."""
    resources: Resources = request.app.state.resources

    async def ip_group() -> str:
        return (await identify_caller(request.scope, resources)).ip_group

    return LoginThrottle(resources.limiter, ip_group, lambda outcome: _record(request.scope, outcome))


LoginThrottleDep = Annotated[LoginThrottle, Depends(login_throttle)]
