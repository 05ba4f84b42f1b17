"""Broker: the broker's password file and ACL, rendered from the registry's accounts.

Pure: accounts in, file text out. A device may publish only under its own topics; a site gateway
only its batch, status and config-answer topics, and reads its command subtree (storage
acknowledgements from ingest; config pushes and state requests from the admin account, which the
command line and the API use); ingest reads everything (one worker directly, several through a
shared subscription); the
notify stage writes to duty apps' topics and a duty app (a person) reads only its own; the admin account (operators, benchmarks) may do anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.feed import INTERNAL_PREFIX
from core.wire import (
    DUTY_PREFIX,
    PREFIX,
    STORED,
    Channel,
    device_topic,
    duty_topic,
    gateway_command_topic,
    gateway_topic,
)


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    kind: str  # device | gateway | person | ingest | analytics | notify | admin
    password_hash: str


def render_passwd(accounts: list[Account]) -> str:
    return "".join(
        f"{a.username}:{a.password_hash}\n" for a in sorted(accounts, key=lambda a: a.username)
    )


def acl_lines(account: Account, share_group: str) -> list[str]:
    u = account.username
    match account.kind:
        case "device":
            return [
                f"topic write {device_topic(u, Channel.TELEMETRY)}",
                f"topic write {device_topic(u, Channel.EVENT)}",
                f"topic write {device_topic(u, Channel.STATUS)}",
                f"topic read {PREFIX}/d/{u}/cmd/#",
            ]
        case "gateway":
            return [
                f"topic write {gateway_topic(u, Channel.BATCH)}",
                f"topic write {gateway_topic(u, Channel.STATUS)}",
                # its answers to pushed configs (wire contract revision 5)
                f"topic write {gateway_topic(u, Channel.CONFIG)}",
                f"topic read {PREFIX}/g/{u}/cmd/#",
            ]
        case "ingest":
            return [
                f"topic read {PREFIX}/#",
                f"topic read $share/{share_group}/{PREFIX}/#",
                f"topic write {INTERNAL_PREFIX}/#",
                # storage acknowledgements to site gateways (wire contract revision 4)
                f"topic write {gateway_command_topic('+', STORED)}",
            ]
        case "analytics":
            return [f"topic read {INTERNAL_PREFIX}/#", f"topic read $share/+/{INTERNAL_PREFIX}/#"]
        case "notify":
            return [f"topic write {DUTY_PREFIX}/+/notifications"]
        case "person":
            return [f"topic read {duty_topic(u)}"]
        case "admin":
            return ["topic readwrite #", "topic read $SYS/#"]
    raise ValueError(f"account {u!r} has unknown kind {account.kind!r}")


def render_acl(accounts: list[Account], share_group: str) -> str:
    out = [
        "# Written by 'shouwang broker sync' from the registry. Do not edit: edits are overwritten.\n"
    ]
    for a in sorted(accounts, key=lambda a: a.username):
        out.append(f"\nuser {a.username}\n")
        out.extend(f"{line}\n" for line in acl_lines(a, share_group))
    return "".join(out)
