"""API (complaints): checking what a resident sent on the complaint form (pure).

Each problem is a :class:`FormProblem` naming the field and, in Chinese and English, what to fix.
A phone number is a mainland mobile number (11 digits from 1) or a landline with its area code
(0 then 9–12 digits); spaces, dashes and a leading +86 are dropped. A photo is a JPEG or PNG by
its first bytes (the browser's declared type is not trusted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from lifecycle.complaints import Complaint

MAX_LOCATION: Final = 200
MAX_DESCRIPTION: Final = 2000
MIN_DESCRIPTION: Final = 5
PHOTO_TYPES: Final = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE: Final = re.compile(r"0[1-9][0-9]{8,11}")
_TRACKING: Final = re.compile(r"[A-Z2-7]{16}")


@dataclass(frozen=True, slots=True)
class FormProblem:
    field: str
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.field}: {self.en}"


def phone_digits(raw: str) -> str | None:
    """The phone number as digits, or None if it is not a mainland mobile or landline number."""
    s = re.sub(r"[\s\-()]", "", raw)
    if s.startswith("+86"):
        s = s[3:]
    elif s.startswith("0086"):
        s = s[4:]
    if _MOBILE.fullmatch(s) or _LANDLINE.fullmatch(s):
        return s
    return None


def photo_type(data: bytes) -> str | None:
    """``image/jpeg`` or ``image/png`` by the first bytes; None for anything else."""
    for magic, kind in PHOTO_TYPES.items():
        if data.startswith(magic):
            return kind
    return None


def is_tracking_code(code: str) -> bool:
    return _TRACKING.fullmatch(code) is not None


def check(
    fields: Mapping[str, str],
    categories: Mapping[str, object],
    photo: bytes | None,
    max_photo: int,
) -> tuple[Complaint | None, list[FormProblem]]:
    """The complaint, or every problem with the form (``categories``: the codes on offer)."""
    problems: list[FormProblem] = []
    category = fields.get("category", "").strip()
    if category not in categories:
        problems.append(FormProblem("category", "请选择类别", "choose a category from the list"))
    location = fields.get("location", "").strip()
    if not location:
        problems.append(
            FormProblem(
                "location", "请填写位置（如 3号楼2单元）", "give the place, e.g. building 3"
            )
        )
    elif len(location) > MAX_LOCATION:
        problems.append(
            FormProblem(
                "location",
                f"位置最多 {MAX_LOCATION} 字",
                f"the place may be at most {MAX_LOCATION} characters",
            )
        )
    description = fields.get("description", "").strip()
    if len(description) < MIN_DESCRIPTION:
        problems.append(
            FormProblem(
                "description",
                f"请描述问题（至少 {MIN_DESCRIPTION} 字）",
                f"describe the problem (at least {MIN_DESCRIPTION} characters)",
            )
        )
    elif len(description) > MAX_DESCRIPTION:
        problems.append(
            FormProblem(
                "description",
                f"描述最多 {MAX_DESCRIPTION} 字",
                f"the description may be at most {MAX_DESCRIPTION} characters",
            )
        )
    phone = phone_digits(fields.get("phone", ""))
    if phone is None:
        problems.append(
            FormProblem(
                "phone",
                "请填写手机号（11位）或带区号的座机号",
                "give a mobile number (11 digits) or a landline with its area code",
            )
        )
    shot: tuple[str, bytes] | None = None
    if photo:
        kind = photo_type(photo)
        if len(photo) > max_photo:
            problems.append(
                FormProblem(
                    "photo",
                    f"照片最大 {max_photo // 1024} KiB",
                    f"the photo may be at most {max_photo // 1024} KiB",
                )
            )
        elif kind is None:
            problems.append(
                FormProblem(
                    "photo", "照片须为 JPEG 或 PNG", "the photo must be a JPEG or PNG image"
                )
            )
        else:
            shot = (kind, photo)
    if problems or phone is None:
        return None, problems
    return Complaint(category, location, description, phone, shot), []
