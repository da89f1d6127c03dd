"""API keys: their format, their generation and how a presented key is checked against what is stored.

A key reads `oe_<key id>_<secret>`: the key id (16 hex digits) is public, names the key in logs and in
`orderengine accounts list`, and is how the key is found; the secret (43 base62 characters, about 256 bits)
is shown once, at creation. Only SHA-256 of the secret is stored. A slow password hash (bcrypt, argon2) protects
low-entropy secrets from guessing; a random 256-bit secret cannot be guessed, so a fast hash loses nothing and
keeps the check cheap. Hashes are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

PREFIX = "oe_"
KEY_ID_HEX_DIGITS = 16
SECRET_LENGTH = 43
_BASE62 = string.digits + string.ascii_letters
_KEY = re.compile(rf"^{PREFIX}([0-9a-f]{{{KEY_ID_HEX_DIGITS}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})$")


class MalformedKey(ValueError):
    """The text is not shaped like an API key; nothing was looked up."""


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as a caller sent it, split into its public id and its secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:  # never print the secret, even by accident in a traceback
        return f"PresentedKey(key_id={self.key_id!r})"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: `api_key` is for the caller, once; `secret_hash` is what the store keeps."""

    key_id: str
    api_key: str
    secret_hash: bytes

    def __repr__(self) -> str:
        return f"NewKey(key_id={self.key_id!r})"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_key() -> NewKey:
    key_id = secrets.token_hex(KEY_ID_HEX_DIGITS // 2)
    secret = "".join(secrets.choice(_BASE62) for _ in range(SECRET_LENGTH))
    return NewKey(key_id=key_id, api_key=f"{PREFIX}{key_id}_{secret}", secret_hash=hash_secret(secret))


def parse_key(text: str) -> PresentedKey:
    """Splits a presented key; MalformedKey (which never quotes the secret) when it is not shaped like one."""
    match = _KEY.match(text)
    if match is None:
        raise MalformedKey(f"not an API key (expected {PREFIX}<16 hex digits>_<43 letters and digits>)")
    return PresentedKey(key_id=match.group(1), secret=match.group(2))


def secret_matches(presented: PresentedKey, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(presented.secret), stored_hash)
