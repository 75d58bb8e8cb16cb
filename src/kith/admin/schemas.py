from __future__ import annotations

from typing import Any, Self

from pydantic import ConfigDict, StrictBool, model_validator

from kith.auth.schemas import PrivateUser
from kith.core.schemas import RequestModel, ResponseModel, Timestamp, at_least_one_of
from kith.db.models import Role


class AdminUserView(PrivateUser):
    suspended: bool


class AdminUserUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra=at_least_one_of("role", "suspended"))

    role: Role | None = None
    suspended: StrictBool | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.role is None and self.suspended is None:
            raise ValueError("give `role`, `suspended`, or both")
        return self


class AuditLogView(ResponseModel):
    id: str
    actor_id: str | None
    actor_username: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    created_at: Timestamp
