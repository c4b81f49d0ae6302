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
