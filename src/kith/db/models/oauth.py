from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class OAuthApp(IdMixin, CreatedAtMixin, Base):
    """An app registered through `POST /api/v1/apps` (docs/mastodon.md#apps-and-sign-in).

    Its `client_id` is public; of its secret only the SHA-256 hash is kept.
    """

    __tablename__ = "oauth_apps"

    name: Mapped[str] = mapped_column(String(100))
    website: Mapped[str | None] = mapped_column(String(2000))
    # One redirect URI per line, as Mastodon takes them.
    redirect_uris: Mapped[str] = mapped_column(Text)
    # Space-separated scopes the app may ask for.
    scopes: Mapped[str] = mapped_column(String(1000))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(String(64))

    @property
    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class OAuthGrant(IdMixin, CreatedAtMixin, Base):
    """An authorization code: single-use, short-lived, stored as a hash."""

    __tablename__ = "oauth_grants"

    app_id: Mapped[str] = foreign_id("oauth_apps.id")
    user_id: Mapped[str] = foreign_id("users.id")
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scopes: Mapped[str] = mapped_column(String(1000))
    # PKCE (RFC 7636): the S256 challenge, when the app sent one.
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OAuthToken(IdMixin, CreatedAtMixin, Base):
    """An app's access token, long-lived (Mastodon apps never refresh), stored as a hash.

    `user_id` is None for an app's own token (the client_credentials grant).
    """

    __tablename__ = "oauth_tokens"

    app_id: Mapped[str] = foreign_id("oauth_apps.id")
    user_id: Mapped[str | None] = foreign_id("users.id", nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(1000))
    last_used_at: Mapped[datetime | None]

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()
