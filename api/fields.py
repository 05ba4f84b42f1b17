"""API: value types shared by the request and response models (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field, model_validator

from api.errors import invalid
from core.namespaces import UID_PATTERN, uid_problem

INT4: Final = 2_147_483_647
INT8: Final = 9_223_372_036_854_775_807

# Registry codes and device uids: what MQTT usernames and topics accept.
CODE_PATTERN: Final = UID_PATTERN
Code = Annotated[str, Field(pattern=CODE_PATTERN, max_length=64, examples=["C01"])]


def _free_uid(uid: str) -> str:
    problem = uid_problem(uid)
    if problem is not None:
        raise ValueError(problem)
    return uid


# A new device's or gateway's uid: a code outside the broker's reserved namespaces.
DeviceUid = Annotated[
    str, Field(pattern=CODE_PATTERN, max_length=64, examples=["E0001"]), AfterValidator(_free_uid)
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]
RefId = Annotated[int, Field(ge=1, le=INT4)]

# Path parameters: serial ids (int4) and bigserial ids (alarms, work orders).
Id = Annotated[int, Path(ge=1, le=INT4)]
BigId = Annotated[int, Path(ge=1, le=INT8)]
Uid = Annotated[str, Path(pattern=CODE_PATTERN, max_length=64)]
Label = Annotated[str, Field(max_length=200)]  # optional text, "" for none
Phone = Annotated[str, Field(max_length=40)]
OptId = Annotated[int | None, Query(ge=1, le=INT4)]  # an optional filter by id


def aware(name: str, t: datetime | None) -> datetime | None:
    """A time from the query, refused without a time zone (``name``: the parameter)."""
    if t is not None and t.tzinfo is None:
        raise invalid(f"query.{name}", "give a time zone, e.g. 2024-05-01T08:00:00+08:00")
    return t


class TimeSpan(BaseModel):
    """A span given with a time zone, ending after it starts (a shift, on any roster)."""

    starts_at: datetime
    ends_at: datetime

    @model_validator(mode="after")
    def _ordered(self) -> TimeSpan:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("give times with a time zone, e.g. 2024-05-01T08:00:00+08:00")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self
