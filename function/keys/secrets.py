"""The raw key and its LiteLLM token.

The function makes the key itself, so that it is known before LiteLLM is
called and the CREATE mapping can pass it in through a secret placeholder.
LiteLLM stores only its SHA-256 (the "token"), which is what every other
mapping uses to name the key; the raw key lives in one composed Secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets

KEY_PREFIX = "sk-"
# 32 bytes from the OS CSPRNG, URL-safe base64 without padding: 43 characters.
KEY_BYTES = 32
_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_-]{43,128}")
# The composed Secrets: the key in use, and during a rotation the new one.
SECRET_RESOURCE = "key"  # noqa: S105 - a resource name, not a secret.
NEXT_SECRET_RESOURCE = "next-key"  # noqa: S105 - a resource name, not a secret.


def new_key() -> str:
    """A fresh raw key: `sk-` and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def token_of(key: str) -> str:
    """LiteLLM's token for a raw key: the SHA-256 hex digest."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_key(value: str) -> bool:
    """Whether a value has the shape of a key this function made."""
    return _KEY_SHAPE.fullmatch(value) is not None


def key_from_secret_data(data: object) -> str | None:
    """The raw key in a Secret's `data` (base64), or None if absent or malformed."""
    if not isinstance(data, dict):
        return None
    encoded = data.get("key")
    if not isinstance(encoded, str):
        return None
    try:
        value = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return value if is_key(value) else None
