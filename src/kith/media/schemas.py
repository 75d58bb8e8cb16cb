from __future__ import annotations

from pydantic import Field, computed_field

from kith.core.schemas import ResponseModel
from kith.core.urls import media_url


class MediaView(ResponseModel):
    id: str
    storage_key: str = Field(exclude=True)
    content_type: str = Field(examples=["image/jpeg"])
    width: int
    height: int
    size: int = Field(description="Bytes.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        url = media_url(self.storage_key)
        assert url is not None
        return url
