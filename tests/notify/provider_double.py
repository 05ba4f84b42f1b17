"""A TEST DOUBLE of the SMS and voice providers' HTTP endpoints (Aliyun Dysmsapi SendSms,
Aliyun Dyvmsapi SingleCallByTts, Tencent Cloud SMS SendSms 2021-01-11), on loopback. It is not
the providers' service: it checks the shape of what the official SDKs send (the action and
version headers, a signed ``Authorization`` naming the expected access key id, the phone number
and template fields) and records each call; it answers OK with a fresh request id, or what the
test scripted (a provider error code, an HTTP error, a refused number)."""

from __future__ import annotations

import itertools
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ALIYUN_AUTH = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<key>[^,]+),SignedHeaders=[a-z0-9;-]+,Signature=[0-9a-f]{64}"
)
TENCENT_AUTH = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{4}-\d{2}-\d{2}/sms/tc3_request,"
    r" SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}"
)
ACTIONS = {("SendSms", "2017-05-25"), ("SingleCallByTts", "2017-05-25")}


@dataclass(frozen=True)
class Call:
    """One request the double took: which provider and action, the access key id in its
    signature, its parameters, and its raw bytes (for checks that a secret is not in them)."""

    provider: str  # aliyun | tencent
    action: str
    key_id: str
    params: dict[str, Any]
    raw: bytes


@dataclass
class Script:
    """What the double answers next: ``("ok",)``, ``("code", CODE)`` (HTTP 200 with a refusal
    in the body), ``("http", STATUS, CODE)`` (an HTTP error)."""

    answers: list[tuple[Any, ...]] = field(default_factory=list)

    def next(self) -> tuple[Any, ...]:
        return self.answers.pop(0) if self.answers else ("ok",)


class ProviderDouble:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rejected: list[str] = []  # requests whose shape was wrong, and why
        self.script = Script()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                raw = self.requestline.encode() + bytes(self.headers) + body
                status, answer = double.handle(self.path, dict(self.headers), body, raw)
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(
        self, path: str, headers: dict[str, str], body: bytes, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            request_id = f"double-{next(self._ids)}"
            if "X-Acs-Action" in headers:
                return self._aliyun(path, headers, raw, request_id)
            if "X-TC-Action" in headers or "X-Tc-Action" in headers:
                return self._tencent(headers, body, raw, request_id)
            self.rejected.append("neither an Aliyun nor a Tencent Cloud request")
            return 400, {"error": "unknown request"}

    def _aliyun(
        self, path: str, headers: dict[str, str], raw: bytes, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        action, version = headers["X-Acs-Action"], headers.get("X-Acs-Version", "")
        auth = ALIYUN_AUTH.fullmatch(headers.get("Authorization", ""))
        if (action, version) not in ACTIONS or auth is None:
            self.rejected.append(f"aliyun {action} {version}: unsigned or unknown action")
            return 400, {"RequestId": request_id, "Code": "IncompleteSignature", "Message": "x"}
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        need = (
            ("PhoneNumbers", "SignName", "TemplateCode")
            if action == "SendSms"
            else ("CalledNumber", "TtsCode")
        )
        if missing := [k for k in need if not query.get(k)]:
            self.rejected.append(f"aliyun {action}: missing {missing}")
            return 400, {"RequestId": request_id, "Code": "MissingParameter", "Message": "x"}
        self.calls.append(Call("aliyun", action, auth["key"], query, raw))
        answer = self.script.next()
        if answer[0] == "http":
            return answer[1], {"RequestId": request_id, "Code": answer[2], "Message": "refused"}
        code = "OK" if answer[0] == "ok" else answer[1]
        extra = (
            {"BizId": f"biz-{request_id}"}
            if action == "SendSms"
            else {"CallId": f"call-{request_id}"}
        )
        return 200, {"RequestId": request_id, "Code": code, "Message": "double", **extra}

    def _tencent(
        self, headers: dict[str, str], body: bytes, raw: bytes, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        action = headers.get("X-TC-Action") or headers.get("X-Tc-Action", "")
        version = headers.get("X-TC-Version") or headers.get("X-Tc-Version", "")
        auth = TENCENT_AUTH.fullmatch(headers.get("Authorization", ""))
        if action != "SendSms" or version != "2021-01-11" or auth is None:
            self.rejected.append(f"tencent {action} {version}: unsigned or unknown action")
            return 200, {
                "Response": {
                    "Error": {"Code": "AuthFailure.SignatureFailure", "Message": "x"},
                    "RequestId": request_id,
                }
            }
        params = json.loads(body)
        if missing := [
            k for k in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId") if not params.get(k)
        ]:
            self.rejected.append(f"tencent SendSms: missing {missing}")
            return 200, {
                "Response": {
                    "Error": {"Code": "MissingParameter", "Message": "x"},
                    "RequestId": request_id,
                }
            }
        self.calls.append(Call("tencent", action, auth["key"], params, raw))
        answer = self.script.next()
        if answer[0] == "http":  # Tencent Cloud answers errors with HTTP 200 and an Error
            return 200, {
                "Response": {
                    "Error": {"Code": answer[2], "Message": "refused"},
                    "RequestId": request_id,
                }
            }
        code = "Ok" if answer[0] == "ok" else answer[1]
        status = {
            "SerialNo": "s-" + request_id,
            "PhoneNumber": params["PhoneNumberSet"][0],
            "Fee": 1,
            "SessionContext": "",
            "Code": code,
            "Message": "double",
            "IsoCode": "CN",
        }
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": request_id}}
