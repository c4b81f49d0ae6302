"""A listing page's envelope read without building Python objects for its records (issue 13).

The client checks each page before landing it (``code``, ``data.hasMore``, ``data.nextCursor``,
the count and the first record's layout); the normaliser parses the landed page again with
polars. ``json.loads`` made 5,000 dicts a page only for those checks (0.9 CPU-s of 洛南's ~3 at
scale 1). msgspec decodes the envelope and keeps each record as its raw JSON text, validated
(syntax, depth, no NaN) but not turned into objects; a record is decoded when a check asks for
it. A body that does not decode this way (not JSON, NaN, nested too deeply, another shape) is
parsed in full by ``pipelines.http`` as before, with the same retries and messages.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pipelines.raw_json import RawRecords


class _Data(msgspec.Struct):
    items: list[msgspec.Raw]
    hasMore: Any = None  # the platform's names
    nextCursor: Any = None


class _Envelope(msgspec.Struct):
    code: Any
    data: _Data
    message: Any = None


_DECODER = msgspec.json.Decoder(_Envelope)


def decode_listing(body: bytes) -> dict[str, Any]:
    """``{"code", "message", "data": {"items", "hasMore", "nextCursor"}}`` of a listing page,
    its items a :class:`RawRecords`; raises when the body is not such a page."""
    env = _DECODER.decode(body)
    return {
        "code": env.code,
        "message": env.message,
        "data": {
            "items": RawRecords(env.data.items),
            "hasMore": env.data.hasMore,
            "nextCursor": env.data.nextCursor,
        },
    }
