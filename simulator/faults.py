"""Injectable faults: armed through ``POST /_sim/faults``, consumed by the next matching requests.

A fault is armed for one county and optionally one label (a canonical entity such as
"household", or "deletions:household", "stats", "index", "file", "auth"). A fault without an
entity matches every request of the county except authentication, so that arming "http500 ×1"
hits exactly the next data request and not the login that precedes it.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

#: Faults consumed by a matching HTTP request.
REQUEST_KINDS = (
    "http500",
    "html502",
    "html200",
    "rate_limit",
    "busy",
    "maintenance",
    "expire_token",
    "drop_connection",
    "truncate",
    "slow",
    "rename_field",
)
#: Faults consumed elsewhere: battle pages (churn) and workbook exports (broken_upload).
OTHER_KINDS = ("churn", "broken_upload")
KINDS = REQUEST_KINDS + OTHER_KINDS

BROKEN_UPLOAD_VARIANTS = ("truncated", "not_workbook", "wrong_sheet")

# Entity spellings accepted in a fault's "entity": canonical, bigdata path, battle path segment.
_ALIASES = {
    "regions": "region",
    "area": "region",
    "households": "household",
    "pkh": "household",
    "members": "person",
    "persons": "person",
    "pkry": "person",
    "measures": "measure",
    "bfcs": "measure",
    "loans": "loan",
    "xd": "loan",
    "projects": "project",
    "xmk": "project",
    "cadres": "cadre",
    "bfr": "cadre",
    "household-cadres": "household_cadre",
    "bfgx": "household_cadre",
}


def canonical_entity(name: str | None) -> str | None:
    if not name:
        return None
    if name.startswith("deletions:"):
        return "deletions:" + (canonical_entity(name.split(":", 1)[1]) or "")
    return _ALIASES.get(name, name)


@dataclass
class Fault:
    county: str  # county code
    kind: str
    remaining: int = 1
    entity: str | None = None
    variant: str | None = (
        None  # broken_upload: truncated / not_workbook / wrong_sheet; truncate: short / abort
    )
    field: str | None = None  # rename_field: the field to rename (platform default if None)
    to: str | None = None  # rename_field: its new name
    k: int = 5  # churn: records touched before each page
    seconds: float = 2.0  # slow: the delay

    def matches(self, county: str, label: str | None) -> bool:
        if self.county != county or self.remaining <= 0:
            return False
        if self.entity is None:
            return label not in (None, "auth")
        return self.entity == label


class FaultBoard:
    """Thread-safe list of armed faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def arm(self, fault: Fault) -> Fault:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {', '.join(KINDS)}")
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        if (
            fault.kind == "broken_upload"
            and (fault.variant or "truncated") not in BROKEN_UPLOAD_VARIANTS
        ):
            raise ValueError(f"broken_upload variant must be one of {BROKEN_UPLOAD_VARIANTS}")
        fault.entity = canonical_entity(fault.entity)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(
        self, county: str, label: str | None, kinds: tuple[str, ...] = REQUEST_KINDS
    ) -> Fault | None:
        """The first armed fault of ``kinds`` matching this request, with one use consumed."""
        with self._lock:
            for f in self._faults:
                if f.kind in kinds and f.matches(county, label):
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self._faults.remove(f)
                    return f
        return None

    def clear(self, county: str | None = None) -> int:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if county is not None and f.county != county]
            return before - len(self._faults)

    def armed(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]
