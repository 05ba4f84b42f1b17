"""Notify: WeCom (企业微信) group robot and DingTalk robot messages, in their documented
formats (pure). DingTalk's signed robots take ``timestamp`` and ``sign`` query parameters:
base64(HMAC-SHA256(secret, "<timestamp ms>\\n<secret>")), URL-encoded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from typing import Any


def wecom_body(title: str, text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n{text}"}}


def dingtalk_body(title: str, text: str) -> dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": f"#### {title}\n\n" + text.replace("\n", "\n\n")},
    }


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(mac).decode())


def dingtalk_url(address: str, secret: str, timestamp_ms: int) -> str:
    if not secret:
        return address
    sep = "&" if "?" in address else "?"
    return f"{address}{sep}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def robot_accepted(body: Any) -> bool:
    """Both robots answer HTTP 200 with ``errcode`` 0 when they took the message."""
    return isinstance(body, dict) and body.get("errcode") == 0
