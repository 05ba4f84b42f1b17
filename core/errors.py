"""Shared: the platform's own errors. Library errors (psycopg, paho) pass through with their types.

ShouwangError
 ├── ConfigError          a setting or file is wrong; says which and what to fix
 ├── RegistryError        a registry operation refers to something that is not there
 │    └── AccountConflict a broker username already belongs to another account
 ├── ServiceUnavailable   the database or broker cannot be reached
 └── InvalidMessage       a device message breaks the wire contract (reason, detail)
"""

from __future__ import annotations


class ShouwangError(Exception):
    """Base of the platform's errors."""


class ConfigError(ShouwangError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class RegistryError(ShouwangError):
    pass


class AccountConflict(RegistryError):
    """A credential would take over a broker account of another kind or owner."""


class ServiceUnavailable(ShouwangError):
    pass


class InvalidMessage(ShouwangError):
    """A device message that breaks the wire contract; it goes to the rejects table, never lost."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
