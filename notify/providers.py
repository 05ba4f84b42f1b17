"""Notify: SMS and voice calls through the providers' official SDKs, each send with one firm's
account (``notify.phone_accounts``): Aliyun SMS (Dysmsapi ``SendSms``), Aliyun voice
notification (Dyvmsapi ``SingleCallByTts``) and Tencent Cloud SMS (``SendSms`` 2021-01-11).
The SDKs sign the requests; nothing here does.

A send answers a ``Receipt``: accepted when the provider said OK for the number, with the
provider's request id and status code either way. A refusal is a short category (``aliyun
isv.BUSINESS_LIMIT_CONTROL``, ``tencent LimitExceeded.PhoneNumberDailyLimit``; ``notify.sms``
says which are permanent), never the provider's message; a provider that does not answer is
retried. Every wait is bounded by the channel's timeout and the SDKs never retry on their own
(the outbox does).

The endpoints are settings (host[:port] and http or https), so that tests reach a local double.
Accounts are looked up in the dispatcher's thread (``PhoneAccounts.channel``), never in a
sending thread, and kept for ``ttl_s``: a changed account is used within a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as AliyunSmsClient
from alibabacloud_dyvmsapi20170525 import models as voice_models
from alibabacloud_dyvmsapi20170525.client import Client as AliyunVoiceClient
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_util import models as util_models
from darabonba.exceptions import ResponseException, UnretryableException
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models as tencent_models
from tencentcloud.sms.v20210111.sms_client import SmsClient as TencentSmsClient

from core.channel_addresses import mobile
from core.db import Conn
from core.errors import ConfigError
from core.settings import Settings
from notify import phone_accounts
from notify.channels import Receipt
from notify.phone_accounts import Account
from notify.recipients import Recipient
from notify.sms import category, code_of, permanent, positional, variables

T = TypeVar("T")
C = TypeVar("C")  # an SDK client
R = TypeVar("R")  # its request
Reader = Callable[[Callable[[Conn], T]], T]
TENCENT_NO_ANSWER = frozenset({"ClientNetworkError", "ServerNetworkError"})


@dataclass(frozen=True, slots=True)
class Endpoints:
    aliyun_sms: str = "dysmsapi.aliyuncs.com"
    aliyun_voice: str = "dyvmsapi.aliyuncs.com"
    tencent_sms: str = "sms.tencentcloudapi.com"
    protocol: str = "https"

    @classmethod
    def from_settings(cls, s: Settings) -> Endpoints:
        return cls(
            s.notify_aliyun_sms_endpoint,
            s.notify_aliyun_voice_endpoint,
            s.notify_tencent_sms_endpoint,
            s.notify_phone_protocol,
        )


def _aliyun_config(a: Account, endpoint: str, protocol: str, timeout_s: float) -> Any:
    ms = max(1, int(timeout_s * 1000))
    return openapi_models.Config(
        access_key_id=a.access_key_id,
        access_key_secret=a.access_key_secret,
        endpoint=endpoint,
        protocol=protocol.upper(),
        connect_timeout=ms,
        read_timeout=ms,
    )


def _runtime(timeout_s: float) -> Any:
    ms = max(1, int(timeout_s * 1000))
    return util_models.RuntimeOptions(
        autoretry=False, max_attempts=0, connect_timeout=ms, read_timeout=ms
    )


def _aliyun(
    client_type: Callable[[Any], C],
    send: Callable[[C, R, Any], Any],
    endpoint: str,
    req: R,
    a: Account,
    ep: Endpoints,
    timeout_s: float,
) -> Receipt:
    """One Aliyun call, ``send(client, req, runtime)`` with a client of ``client_type`` for
    ``endpoint``: accepted when its body's ``Code`` is ``OK``."""
    client = client_type(_aliyun_config(a, endpoint, ep.protocol, timeout_s))
    try:
        resp = send(client, req, _runtime(timeout_s))
    except ResponseException as e:  # the provider answered with an HTTP error
        data = e.data if isinstance(e.data, dict) else {}
        code = code_of(e.code or data.get("Code"))
        return Receipt(
            False,
            category("aliyun", code),
            str(data.get("RequestId") or getattr(e, "request_id", "") or "")[:128],
            code,
            e.status_code if isinstance(e.status_code, int) else None,
            permanent(code),
        )
    except UnretryableException as e:  # no answer: the SDK wraps what the connection raised
        inner = getattr(e, "inner_exception", None)
        return Receipt(False, f"aliyun: no answer ({type(inner or e).__name__})")
    body = resp.body
    code = code_of(body.code)
    ok = body.code == "OK"
    return Receipt(
        ok,
        "" if ok else category("aliyun", code),
        str(body.request_id or "")[:128],
        code,
        resp.status_code if isinstance(resp.status_code, int) else None,
        not ok and permanent(code),
    )


def aliyun(
    a: Account, phone: str, values: dict[str, str], delivery: str, ep: Endpoints, timeout_s: float
) -> Receipt:
    """The account's kind: an SMS (Dysmsapi ``SendSms``, its template and sign name) or a voice
    call (Dyvmsapi ``SingleCallByTts``, reading its TTS template), with the values."""
    params = orjson.dumps(values).decode()
    if a.kind == "voice":
        call = voice_models.SingleCallByTtsRequest(
            called_number=phone, tts_code=a.template_code, tts_param=params, out_id=delivery
        )
        send_call = AliyunVoiceClient.single_call_by_tts_with_options
        return _aliyun(AliyunVoiceClient, send_call, ep.aliyun_voice, call, a, ep, timeout_s)
    sms = sms_models.SendSmsRequest(
        phone_numbers=phone,
        sign_name=a.sign_name,
        template_code=a.template_code,
        template_param=params,
        out_id=delivery,
    )
    send_sms = AliyunSmsClient.send_sms_with_options
    return _aliyun(AliyunSmsClient, send_sms, ep.aliyun_sms, sms, a, ep, timeout_s)


def tencent_sms(
    a: Account, phone: str, values: dict[str, str], delivery: str, ep: Endpoints, timeout_s: float
) -> Receipt:
    http = HttpProfile(endpoint=ep.tencent_sms, reqTimeout=max(1, int(timeout_s + 0.999)))
    http.scheme = ep.protocol
    client = TencentSmsClient(
        credential.Credential(a.access_key_id, a.access_key_secret),
        a.region,
        ClientProfile(httpProfile=http),
    )
    req = tencent_models.SendSmsRequest()
    req.PhoneNumberSet = [f"+86{phone}"]
    req.SmsSdkAppId = a.app_id
    req.SignName = a.sign_name
    req.TemplateId = a.template_code
    req.TemplateParamSet = positional(values)
    req.SessionContext = delivery
    try:
        resp = client.SendSms(req)
    except TencentCloudSDKException as e:
        code = code_of(e.get_code())
        if code in TENCENT_NO_ANSWER:
            return Receipt(False, f"tencent: no answer ({code})")
        return Receipt(
            False,
            category("tencent", code),
            str(e.get_request_id() or "")[:128],
            code,
            None,
            permanent(code),
        )
    request_id = str(resp.RequestId or "")[:128]
    status = resp.SendStatusSet[0] if resp.SendStatusSet else None
    code = code_of(status.Code if status is not None else "NoStatus")
    ok = status is not None and status.Code == "Ok"
    return Receipt(
        ok,
        "" if ok else category("tencent", code),
        request_id,
        code,
        None,
        not ok and permanent(code),
    )


SENDERS = {
    ("aliyun", "sms"): aliyun,
    ("aliyun", "voice"): aliyun,
    ("tencent", "sms"): tencent_sms,
}


@dataclass(frozen=True, slots=True)
class Phone:
    """An SMS or voice channel bound to one firm's account (or to why there is none)."""

    account: Account | None
    endpoints: Endpoints
    timeout_s: float = 5.0
    missing: str = "no account"

    def send(self, delivery: str, r: Recipient, payload: dict[str, Any]) -> Receipt:
        a = self.account
        if a is None:
            return Receipt(False, self.missing, permanent=True)
        sender = SENDERS.get((a.provider, a.kind))
        if sender is None or a.kind != r.kind:
            return Receipt(False, f"{a.provider} has no {r.kind} channel", permanent=True)
        return sender(
            a, mobile(r.address), variables(payload), delivery, self.endpoints, self.timeout_s
        )


@dataclass
class PhoneAccounts:
    """The firms' accounts as the dispatcher uses them: decrypted with ``key``, kept for
    ``ttl_s``."""

    key: str
    endpoints: Endpoints
    timeout_s: float = 5.0
    ttl_s: float = 60.0
    _cache: dict[tuple[int, str], tuple[float, Phone]] = field(default_factory=dict)

    def channel(self, firm: str, kind: str, read: Reader[Account | None]) -> Phone:
        """The channel for a row of ``firm`` (``firm:<id>``, as outbox claims say); a firm with
        no account, a community with no firm and the platform's operators get one that fails
        permanently, saying why."""
        kind_name = "SMS" if kind == "sms" else "voice"
        if not firm.startswith("firm:"):
            why = f"no {kind_name} account: the community has no property firm"
            if firm == "platform":
                why = f"no {kind_name} account for the platform's operators"
            return Phone(None, self.endpoints, self.timeout_s, why)
        firm_id = int(firm.removeprefix("firm:"))
        hit = self._cache.get((firm_id, kind))
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        try:
            account = read(lambda c: phone_accounts.load(c, firm_id, kind, self.key))
            why = f"no {kind_name} account for firm {firm_id} (`shouwang phone account`)"
        except ConfigError as e:
            account, why = None, str(e)
        phone = Phone(account, self.endpoints, self.timeout_s, why)
        self._cache[(firm_id, kind)] = (time.monotonic(), phone)
        return phone
