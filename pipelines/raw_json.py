"""Records kept as raw JSON: what the connectors' msgspec page decoders return for a page's
records (洛南's listing items, the battle platforms' list rows). The page is checked and its
keys read without building 5,000 Python dicts; the normaliser parses the landed body itself."""

from __future__ import annotations

import msgspec


class RawRecords(list):
    """A page's records as raw JSON, each decoded to Python only when read (a layout check reads
    the first, a deletion feed's check every one); ``len`` counts them without decoding."""

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [msgspec.json.decode(raw) for raw in super().__getitem__(index)]
        return msgspec.json.decode(super().__getitem__(index))

    def __iter__(self):
        return (msgspec.json.decode(raw) for raw in super().__iter__())
