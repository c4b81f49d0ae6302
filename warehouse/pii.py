"""person_key: HMAC-SHA256 of the ID number keyed with ``HUB_PII_KEY`` (hex; checked by
``base.settings.pii_key``: the production profile refuses a missing, short or development
key; the demo profile falls back to the published development key)."""

from __future__ import annotations

import hashlib

from base import settings


def pii_key() -> bytes:
    """The person_key key bytes (``base.settings.pii_key``: checked for the profile)."""
    return settings.pii_key()


def _hmac_pads(key: bytes) -> dict[str, bytes]:
    """The inner and outer pads of HMAC-SHA256 (RFC 2104) for ``key``: the SQL then needs only
    two sha256 calls per row."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return {
        "ipad": bytes(b ^ 0x36 for b in key),
        "opad": bytes(b ^ 0x5C for b in key),
    }


def person_key(id_number: str) -> str:
    """person_key of one ID number, in Python (for tests and look-ups, not the record path)."""
    import hmac

    return hmac.new(pii_key(), id_number.encode("utf-8"), hashlib.sha256).hexdigest()
