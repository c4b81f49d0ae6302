"""The hub's own exceptions. Their messages are shown to county admins and engineers, so each one
says *which county*, *where* and *what*, and none of them ever carries a secret."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters whose values are credentials (compared case-insensitively, ignoring ``_``/``-``).
_SECRET_PARAMS = {
    "token",
    "accesstoken",
    "access_token",
    "authorization",
    "key",
    "appkey",
    "secret",
    "appsecret",
    "password",
    "passwd",
    "pwd",
    "sign",
    "signature",
    "apikey",
    "sessionid",
}
_REDACTED = "***"
# A bearer token or basic credentials pasted into free text.
_AUTH_IN_TEXT = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


def _norm_param(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_SECRET_PARAMS_NORM = frozenset(_norm_param(p) for p in _SECRET_PARAMS)


def _is_secret_param(name: str) -> bool:
    return _norm_param(name) in _SECRET_PARAMS_NORM


def redact_url(url: str) -> str:
    """``url`` without user info and with credential-like query values replaced by ``***``.

    Anything that is not a URL (a file path, an env var name) is returned unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]  # drop user:password@
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret_param(k) for k, _ in pairs):
            query = urlencode(
                [(k, _REDACTED if _is_secret_param(k) else v) for k, v in pairs], safe="[]:,"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret value and any ``Bearer …``/``Basic …`` credential masked."""
    for secret in secrets:
        # Very short values would mask innocent text and are not real credentials anyway.
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return _AUTH_IN_TEXT.sub(lambda m: f"{m.group(1)} {_REDACTED}", text)


def _label(county: object) -> str:
    # Accept a County (use its label) as well as a plain string.
    label = getattr(county, "label", None)
    return label if isinstance(label, str) else str(county)


class HubError(Exception):
    """Base class of the hub's errors."""


class SourceError(HubError):
    """A county's source could not be read: unreachable, refusing, or sending something unusable.

    ``str(err)`` is ``"<county>: <url or file>: <problem>"``; the URL loses its credentials and
    ``secrets`` (the county's key, secret, password, current token) are masked in the problem."""

    def __init__(
        self,
        county_label: object,
        where: object,
        problem: str,
        *,
        secrets: Iterable[str | None] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.county = _label(county_label)
        self.where = redact_text(redact_url(str(where)), secrets)
        self.problem = redact_text(str(problem), secrets)
        super().__init__(f"{self.county}: {self.where}: {self.problem}")

    def __reduce__(self):  # keep the redacted fields when pickled across processes
        return (_rebuild_source_error, (self.county, self.where, self.problem))


def _rebuild_source_error(county: str, where: str, problem: str) -> SourceError:
    return SourceError(county, where, problem)


class StaleReplay(HubError):
    """A landed sync older than what the warehouse already holds for the county: merging it
    would move the county back in time, so it is refused (replay landings oldest first)."""

    def __init__(self, county_label: object, sync_id: str, latest: str) -> None:
        self.county, self.sync_id, self.latest = _label(county_label), sync_id, latest
        super().__init__(
            f"{self.county}: landed sync {sync_id} is older than the last merged sync {latest}; "
            "replay landings oldest first"
        )

    def __reduce__(self):
        return (StaleReplay, (self.county, self.sync_id, self.latest))


class SafetyStop(HubError):
    """A sync would soft-delete an implausible share of a county's live records (a half-empty
    listing from a sick platform looks exactly like mass deletion), so nothing was merged."""

    def __init__(
        self,
        county_label: object,
        entity: str,
        disappearing: int,
        live: int,
        limit_share: float = 0.20,
    ) -> None:
        self.county = _label(county_label)
        self.entity = entity
        self.disappearing = disappearing
        self.live = live
        self.limit_share = limit_share
        share = disappearing / live if live else 1.0
        super().__init__(
            f"{self.county}: safety stop: {disappearing} of {live} live {entity} records "
            f"({share:.1%}) would be deleted, more than the allowed {limit_share:.0%}; "
            "nothing was merged. If the deletions are real, merge again with a higher "
            "safety_share (the merge step's config in Dagster, or hub sync --safety-share)."
        )

    def __reduce__(self):
        return (
            type(self),
            (self.county, self.entity, self.disappearing, self.live, self.limit_share),
        )


class RejectThresholdExceeded(HubError):
    """Too many of a county's records failed validation; the sync refused to merge and left the
    county's data as it was.

    ``top_reasons``: most frequent first, either dicts as ``warehouse.top_reasons`` returns them
    (entity, rule, column_name, records, message) or ``(rule, count)`` pairs."""

    def __init__(
        self,
        county_label: object,
        rate: float,
        threshold: float,
        top_reasons: Sequence[Mapping[str, Any] | tuple[str, int]] = (),
        *,
        rejected: int | None = None,
        total: int | None = None,
    ) -> None:
        self.county = _label(county_label)
        self.rate = rate
        self.threshold = threshold
        self.top_reasons = list(top_reasons)
        self.rejected = rejected
        self.total = total
        counts = f"{rejected} of {total} records" if rejected is not None and total else "records"
        reasons = "; ".join(_reason(r) for r in self.top_reasons[:5]) or "none recorded"
        super().__init__(
            f"{self.county}: {rate:.1%} of {counts} rejected, above the county's threshold of "
            f"{threshold:.1%}; nothing was merged. Top reasons: {reasons}. "
            "See ops.reject for every rejected row."
        )

    def __reduce__(self):
        return (
            _rebuild_reject,
            (self.county, self.rate, self.threshold, self.top_reasons, self.rejected, self.total),
        )


def _rebuild_reject(county, rate, threshold, top_reasons, rejected, total):
    return RejectThresholdExceeded(
        county, rate, threshold, top_reasons, rejected=rejected, total=total
    )


def _reason(reason: Mapping[str, Any] | tuple[str, int]) -> str:
    if isinstance(reason, Mapping):
        where = ".".join(str(reason[k]) for k in ("entity", "column_name") if reason.get(k))
        count = reason.get("records", reason.get("count", "?"))
        return f"{reason.get('rule')}{f' ({where})' if where else ''} ×{count}"
    rule, count = reason
    return f"{rule} ×{count}"


#: errno values that mean "the machine, not the data": named in ResourceError messages.
_RESOURCE_ERRNOS = {
    "ENOSPC": "no space left on the device (disk full)",
    "EDQUOT": "disk quota exceeded",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "EROFS": "read-only file system",
    "EIO": "input/output error on the device",
}
_RESOURCE_TEXT = re.compile(
    r"No space left on device|Disk quota exceeded|Permission denied|Operation not permitted|"
    r"Read-only file system|Input/output error",
    re.IGNORECASE,
)
#: DuckDB's words when the disk of its temp directory (where a query past its memory limit
#: spills) is full: it names its own setting, not the errno.
_SPILL_FULL = re.compile(r"failed to offload data block|max_temp_directory_size", re.IGNORECASE)


def resource_cause(exc: BaseException | None) -> str | None:
    """The real cause when ``exc`` (or an error it was raised from / during) is a disk-full,
    permission or device error, as a short phrase; None for anything else."""
    import errno as errno_module

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            name = errno_module.errorcode.get(exc.errno, "")
            if name in _RESOURCE_ERRNOS:
                return f"{_RESOURCE_ERRNOS[name]} ({name}: {exc.strerror})"
        match = _RESOURCE_TEXT.search(str(exc))
        if match:
            return f"{match.group(0)}: {str(exc).strip().splitlines()[0][:300]}"
        if _SPILL_FULL.search(str(exc)):
            return (
                "no space left on the disk of DuckDB's temp directory (where work past its "
                f"memory limit spills): {str(exc).strip().splitlines()[0][:300]}"
            )
        exc = exc.__cause__ or exc.__context__
    return None


class ResourceError(HubError):
    """The machine refused: disk full, no permission, read-only or failing device. Names the
    county, the file and the real cause; whatever was being written was not committed."""

    def __init__(self, county_label: object, path: object, action: str, cause: str) -> None:
        self.county, self.path, self.action, self.cause = (
            _label(county_label),
            str(path),
            action,
            cause,
        )
        super().__init__(
            f"{self.county}: {self.path}: {action} failed: {cause}. Nothing was committed; "
            "free space or fix the permissions, then sync again."
        )

    def __reduce__(self):
        return (ResourceError, (self.county, self.path, self.action, self.cause))


class CursorMismatch(HubError):
    """A landing fetched from cursors that are not the warehouse's committed ones (its cursor
    cache belonged to another state of the warehouse: a restored backup, another
    ``HUB_WAREHOUSE``): merging it could skip changes for good, so it is refused."""

    def __init__(self, county_label: object, sync_id: str, landed: dict, committed: dict) -> None:
        self.county, self.sync_id = _label(county_label), sync_id
        self.landed, self.committed = dict(landed), dict(committed)
        super().__init__(
            f"{self.county}: landing {sync_id} fetched from cursors {_short(self.landed)}, but "
            f"the warehouse's committed cursors are {_short(self.committed)} (the cursor cache "
            "was not the warehouse's: a restored backup, or HUB_WAREHOUSE pointing at another "
            "file). Nothing was merged. The cache now holds the warehouse's cursors: sync the "
            "county again and it resumes from them (no full sync needed)."
        )

    def __reduce__(self):
        return (CursorMismatch, (self.county, self.sync_id, self.landed, self.committed))


def _short(marks: Mapping[str, str], limit: int = 300) -> str:
    text = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(marks.items())) + "}"
    return text if len(text) <= limit else text[: limit - 1] + "…}"


class ListingIncomplete(HubError):
    """A full listing delivered a different number of records than the platform says it has:
    absence from it would delete records that still exist, so it is refused before any delete."""

    def __init__(self, county_label: object, where: object, differences: dict) -> None:
        self.county, self.where, self.differences = _label(county_label), str(where), differences
        detail = "; ".join(
            f"{entity}: {got} in the listing, the platform counts {expected}"
            for entity, (got, expected) in sorted(differences.items())
        )
        super().__init__(
            f"{self.county}: {self.where}: full listing incomplete ({detail}); nothing was "
            "merged or deleted. Land the county again (a full sync), or inspect the landed pages."
        )

    def __reduce__(self):
        return (ListingIncomplete, (self.county, self.where, self.differences))
