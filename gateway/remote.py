"""Gateway: a site config pushed from the platform, judged before it is applied (pure).

The platform pushes a whole site config on ``sw/v1/g/{gateway}/cmd/config`` (wire contract
revision 5) with its version and the networks the gateway's registration declares. The gateway
applies it only when it is newer than the config it runs, passes the same validation as
``shouwang gateway check``, is for this gateway, keeps the broker and the buffer (those change on
the box itself, where the password file and the disk are), and reaches no device outside the
declared networks. Anything else is refused with every problem, and the running config stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from core.located_yaml import ProblemsError
from core.wire import ConfigPush
from sites.config import SiteConfig, parse_site_config
from sites.networks import outside


@dataclass(frozen=True, slots=True)
class Accepted:
    version: int
    config: SiteConfig
    text: str  # the YAML, to keep as the site config file


@dataclass(frozen=True, slots=True)
class Refused:
    version: int  # 0 when the push is unreadable
    errors: list[str]


def judge_push(
    payload: bytes, running: SiteConfig, running_version: int, base: Path
) -> Accepted | Refused:
    """What to do with a push: apply it, or refuse it with its problems. ``base``: the folder
    relative paths of the config are taken from (the running config file's)."""
    try:
        push = ConfigPush.model_validate_json(payload)
    except ValidationError as e:
        errs = [f"{'.'.join(str(p) for p in x['loc']) or '(push)'}: {x['msg']}" for x in e.errors()]
        return Refused(0, ["the push does not follow the wire contract (revision 5)", *errs])
    v = push.version
    if v <= running_version:
        return Refused(
            v, [f"version {v} is not newer than the running config's ({running_version})"]
        )
    try:
        cfg = parse_site_config(push.config.encode(), f"pushed config v{v}", base)
    except ProblemsError as e:  # the config's own problems, or a profile's
        return Refused(v, [str(p) for p in e.errors])
    errors: list[str] = []
    if cfg.gateway != running.gateway:
        errors.append(f"gateway: the config is for {cfg.gateway}, and this is {running.gateway}")
    if cfg.broker != running.broker:
        errors.append("broker: the broker settings change only on the box (its config file)")
    if cfg.buffer_path != running.buffer_path:
        errors.append("buffer.path: the buffer moves only on the box, with the gateway stopped")
    errors += outside(push.networks, cfg.networks, [(d.uid, d.link) for d in cfg.devices])
    if errors:
        return Refused(v, errors)
    return Accepted(v, cfg, push.config)
