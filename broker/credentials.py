"""Gateway: device credentials, hashed the way Mosquitto's password file expects.

Passwords are random, shown once when issued, and stored only as PBKDF2-HMAC-SHA512 hashes in
Mosquitto's ``$7$`` format, so the same hash serves the database and the broker's password file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 101  # Mosquitto 2.0's default for $7$
_SALT_BYTES = 12


def new_password() -> str:
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    again = hash_password(password, iterations=int(iterations), salt=base64.b64decode(salt))
    return hmac.compare_digest(again.rsplit("$", 1)[1], digest)
