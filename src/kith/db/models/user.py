from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, utcnow


class Role(StrEnum):
    user = "user"
    moderator = "moderator"
    admin = "admin"

    @property
    def is_staff(self) -> bool:
        """Moderators and admins: they see and act on what plain users may not."""
        return self in STAFF_ROLES


# The staff roles, for guards that list roles; `is_staff` is the one test of them.
STAFF_ROLES = (Role.moderator, Role.admin)


# Marks a loaded user who calls with an API key; not a column, never stored.
_PLAIN_USER = "_kith_plain_user"


class User(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(30))
    # Lower-cased copies carry the case-insensitive uniqueness, portably.
    username_key: Mapped[str] = mapped_column(String(30), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    display_name: Mapped[str] = mapped_column(String(50))
    bio: Mapped[str] = mapped_column(String(500), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    # Storage key of the avatar image (an upload of the user's own); the URL derives from it.
    avatar_key: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(String(16), default=Role.user, server_default=Role.user)
    suspended: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_staff(self) -> bool:
        """Whether the user acts as a moderator or an admin (the one spelling of it).

        False for a staff member who calls with an API key (`act_as_plain_user`): staff
        powers need an interactive login.
        """
        return Role(self.role).is_staff and not self.__dict__.get(_PLAIN_USER, False)

    def act_as_plain_user(self) -> None:
        """For this request (this loaded object only, nothing is stored): no staff powers."""
        self.__dict__[_PLAIN_USER] = True
