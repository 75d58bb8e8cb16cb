"""The HTML of the authorization page (`/oauth/authorize`), rendered on the server.

Plain HTML with the web client's style sheet and one small script of Kith's (`oauth.js`,
which signs in with the web client's session when there is one); no inline script or style,
nothing from another origin. Every value from the request or an app is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from urllib.parse import urlsplit

from kith.auth.scopes import FOLLOW_SCOPES, READ_SCOPES, WRITE_SCOPES
from kith.web.assets import KITH

# What each scope lets an app do, in the words the page shows.
_SCOPE_WORDS = {
    "read": "read everything your account can see: your profile, friends, posts, notifications",
    "write": "act for you: post, edit and delete, like, comment, change your profile, manage friends",
    "follow": "see and change your friends and blocks",
    "push": "receive push notifications (Kith sends none yet)",
    "profile": "read your profile only",
}


def _scope_words(scope: str) -> str:
    if scope in _SCOPE_WORDS:
        return _SCOPE_WORDS[scope]
    mode, _, what = scope.partition(":")
    if scope in READ_SCOPES:
        return f"read your {what}"
    if scope in WRITE_SCOPES or scope in FOLLOW_SCOPES:
        return f"change your {what}"
    return f"{mode} {what}"


def csp(redirect_uri: str | None) -> str:
    """The page's Content-Security-Policy. The form may be sent only to this origin, and the
    answer may redirect to the app: browsers hold a form's redirects to `form-action` too."""
    target = ""
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        if parts.scheme in ("http", "https") and parts.netloc:
            target = f" {parts.scheme}://{parts.netloc}"
        elif parts.scheme and parts.scheme != "urn":
            target = f" {parts.scheme}:"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        f"base-uri 'none'; form-action 'self'{target}; frame-ancestors 'none'; object-src 'none'"
    )


def _page(title: str, body: str, *, script: bool = False) -> str:
    scripts = f'<script type="module" src="{KITH.base}/oauth.js"></script>\n' if script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Kith</title>
<link rel="icon" href="{KITH.base}/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{KITH.base}/style.css">
{scripts}</head>
<body>
<header class="top"><a class="brand" href="/">Kith</a></header>
<main id="main">
{body}
</main>
</body>
</html>
"""


def authorize_page(
    *,
    app_name: str,
    website: str | None,
    scope_list: list[str],
    fields: Mapping[str, str],
    csrf_token: str,
    login: str = "",
    error: str | None = None,
    use_web_session: bool = True,
) -> str:
    """The page that asks the user to sign in and to approve the app and its scopes."""
    app = escape(app_name)
    site = ""
    if website and urlsplit(website).scheme in ("http", "https"):
        site = f' (<a href="{escape(website)}" rel="noopener noreferrer">{escape(website)}</a>)'
    scopes = "\n".join(
        f"<li><code>{escape(scope)}</code>: {escape(_scope_words(scope))}</li>" for scope in scope_list
    )
    hidden = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    alert = f'<div class="notice error" role="alert"><p>{escape(error)}</p></div>\n' if error else ""
    body = f"""<h1>Authorize {app}?</h1>
{alert}<p>The app <strong>{app}</strong>{site} asks to use your Kith account. It will be able to:</p>
<ul class="card">
{scopes}
</ul>
<form method="post" action="/oauth/authorize" class="card" id="authorize"
  data-web-session="{"yes" if use_web_session else "no"}">
{hidden}
<input type="hidden" name="csrf_token" value="{escape(csrf_token)}">
<input type="hidden" name="session_token" value="" id="session-token">
<p id="signed-in" hidden></p>
<fieldset id="login-fields">
<legend>Sign in to Kith</legend>
<div class="field"><label for="login">Username or e-mail</label>
<input id="login" name="login" autocomplete="username" value="{escape(login)}"></div>
<div class="field"><label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"></div>
</fieldset>
<div class="actions">
<button class="primary" type="submit" name="decision" value="approve">Authorize</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
<p class="hint">You can revoke this later in your settings, under “Authorized apps”.</p>"""
    return _page(f"Authorize {app_name}", body, script=use_web_session)


def code_page(code: str) -> str:
    """The code an out-of-band app asks its user to copy."""
    body = f"""<h1>Authorization code</h1>
<p>Copy this code and paste it into the app:</p>
<div class="field"><label for="code">Code</label>
<input id="code" readonly value="{escape(code)}"></div>
<p class="hint">It works once, within ten minutes.</p>"""
    return _page("Authorization code", body)


def message_page(title: str, message: str) -> str:
    """A page that only tells something: the app was denied, or the request cannot be served."""
    body = f"""<h1>{escape(title)}</h1>
<div class="notice error" role="alert"><p>{escape(message)}</p></div>"""
    return _page(title, body)
