"""Notify: what an SMS or a voice call says, and what a provider's refusal means (pure).

An SMS in China goes out only on a template the provider approved, under an approved sign name
(签名): the platform sends the template's variables, not free text. Every template, SMS or
voice (TTS), gets the same variables, each cut to ``MAX_VARIABLE`` characters (Aliyun refuses
longer values):

    event   the event's name in Chinese (``电梯困人``), else its code
    place   the community (and building)
    device  the device's id
    level   the severity (``P0``)

Aliyun takes them as JSON by name (a template such as ``${place}${device}发生${event}（${level}）,
请立即处理``); Tencent Cloud by position, in that order (``{1}`` is the event … ``{4}`` the
level).

A refusal is stored as a short category, ``<provider> <code>`` (the provider's error code,
never its message), and is permanent when no retry can mend it: the number, the template, the
sign name or the key is wrong, or the account is not allowed to send. Throttling, the provider's
own errors and unknown codes are retried.
"""

from __future__ import annotations

import re
from typing import Any

MAX_VARIABLE = 20
NAMES = ("event", "place", "device", "level")

# Codes (by prefix) that no retry mends. Aliyun (SMS and voice) first, then Tencent Cloud.
PERMANENT = (
    "isv.MOBILE_NUMBER_ILLEGAL",
    "isv.MOBILE_COUNT_OVER_LIMIT",
    "isv.SMS_TEMPLATE_ILLEGAL",
    "isv.SMS_SIGNATURE_ILLEGAL",
    "isv.SMS_SIGN_ILLEGAL",
    "isv.TEMPLATE_MISSING_PARAMETERS",
    "isv.TEMPLATE_PARAMS_ILLEGAL",
    "isv.INVALID_PARAMETERS",
    "isv.INVALID_JSON_PARAM",
    "isv.PARAM_LENGTH_LIMIT",
    "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.ACCOUNT_NOT_EXISTS",
    "isv.ACCOUNT_ABNORMAL",
    "isv.PRODUCT_UN_SUBSCRIPT",
    "isv.PRODUCT_UNSUBSCRIBE",
    "isv.OUT_OF_SERVICE",
    "isv.AMOUNT_NOT_ENOUGH",
    "isv.CALLEDNUMBER_INVALID",
    "isv.TTS_TEMPLATE_ILLEGAL",
    "isv.VOICE_FILE_ILLEGAL",
    "isv.DENY_IP_RANGE",
    "isv.RAM_PERMISSION_DENY",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidVersion",
    "Forbidden",
    "MissingParameter",
    "InvalidParameter",
    "AuthFailure",
    "InvalidParameterValue",
    "UnauthorizedOperation",
    "UnsupportedOperation",
    "FailedOperation.SignatureIncorrectOrUnapproved",
    "FailedOperation.TemplateIncorrectOrUnapproved",
    "FailedOperation.PhoneNumberInBlacklist",
    "FailedOperation.InsufficientBalanceInSmsPackage",
    "FailedOperation.ContainSensitiveWord",
    "FailedOperation.MissingSignature",
    "FailedOperation.MissingTemplate",
)
_CODE = re.compile(r"[^A-Za-z0-9._-]")


def variables(payload: dict[str, Any]) -> dict[str, str]:
    """The template variables of a notification (a group: its first alarm and the count)."""
    items = payload.get("items")
    one = (
        items[0]
        if payload.get("kind") == "group" and isinstance(items, list) and items
        else payload
    )
    if not isinstance(one, dict):
        one = {}
    name = one.get("name")
    event = (name.get("zh") if isinstance(name, dict) else None) or one.get("code") or ""
    if one is not payload:
        event = f"{event} 等{payload.get('count', len(items or []))}项"
    place = str(one.get("community_name") or one.get("community") or "")
    if one.get("building"):
        place = f"{place}{one['building']}"
    values = {
        "event": str(event),
        "place": place,
        "device": str(one.get("device") or ""),
        "level": str(payload.get("severity") or one.get("severity") or ""),
    }
    return {k: _cut(v) for k, v in values.items()}


def positional(values: dict[str, str]) -> list[str]:
    """The variables in Tencent Cloud's order ({1} … {4})."""
    return [values[k] for k in NAMES]


def _cut(text: str) -> str:
    clean = "".join(ch for ch in text if ch.isprintable())
    return clean[:MAX_VARIABLE]


def code_of(code: object) -> str:
    """A provider's error code as stored: letters, digits and ``._-``, at most 64 characters."""
    return _CODE.sub("", str(code or ""))[:64] or "unknown"


def permanent(code: str) -> bool:
    """Whether no retry can mend a refusal with this code."""
    return code.startswith(PERMANENT)


def category(provider: str, code: object) -> str:
    return f"{provider} {code_of(code)}"
