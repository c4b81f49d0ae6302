"""HTTP plumbing shared by the county clients.

Two layers of retry, because county platforms fail in two ways:

* **transport** (refused or dropped connections, read timeouts, HTTP 429/5xx, ``Retry-After``):
  urllib3's ``Retry`` inside the session, see :func:`make_session`;
* **body** (a gateway's HTML error page served with status 200, JSON cut off mid-stream, an
  application error inside a 200 envelope such as "database busy"): urllib3 cannot see those, so
  :class:`Fetcher` retries them a bounded number of times with backoff.

Whatever is still failing after both layers becomes a :class:`~base.errors.SourceError`
naming the county, the URL (credentials stripped) and the problem.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from base.errors import SourceError, redact_text, redact_url
from pipelines.http_body import (  # the JSON helpers are used (and imported) from here too
    BodyFile,
    UnusableJson,
    describe_json_error,
    parse_json_body,
)

log = logging.getLogger(__name__)

#: Statuses urllib3 retries by itself (with backoff, honouring ``Retry-After``).
RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "shangluo-hub/0.1 (Shangluo city poverty data hub)"


def _setting(settings: Mapping[str, str] | None, name: str) -> str | None:
    if settings and settings.get(name):
        return settings[name]
    return os.environ.get(name) or None


@dataclass(frozen=True)
class HttpPolicy:
    """Retry and timeout knobs; defaults suit production, tests shrink the backoff."""

    retries: int = 6  # urllib3 transport retries per request
    backoff_factor: float = 0.5  # sleeps 0.5, 1, 2, 4 … seconds between retries
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # never sleep longer than this for a Retry-After header
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # battle platforms take seconds per page under load
    body_attempts: int = 5  # attempts for bad bodies and application-level transient errors
    # Bounds against hostile or broken platforms (pipelines/paging.py, issue 10):
    max_body_bytes: int = 512 * 1024 * 1024  # one answer larger than this is refused
    sync_deadline: float = 4 * 3600.0  # seconds one sync's fetch may take, all requests included
    max_empty_pages: int = 5  # consecutive empty pages that still say more follow
    paging_slack_share: float = 0.2  # records a listing may exceed the platform's count by …
    paging_slack_items: int = 1000  # … plus this many (records move while we page)
    reauth_attempts: int = 3  # re-authentications per request when the token keeps expiring
    page_concurrency: int = 4  # offset-paged listings: pages in flight at once (battle, issue 13)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str] | None = None) -> HttpPolicy:
        """Defaults overridden by ``HUB_HTTP_*`` (from ``settings`` first, then the environment)."""
        knobs = {
            "retries": ("HUB_HTTP_RETRIES", int),
            "backoff_factor": ("HUB_HTTP_BACKOFF", float),
            "backoff_max": ("HUB_HTTP_BACKOFF_MAX", float),
            "retry_after_max": ("HUB_HTTP_RETRY_AFTER_MAX", float),
            "connect_timeout": ("HUB_HTTP_CONNECT_TIMEOUT", float),
            "read_timeout": ("HUB_HTTP_READ_TIMEOUT", float),
            "body_attempts": ("HUB_HTTP_BODY_ATTEMPTS", int),
            "max_body_bytes": ("HUB_HTTP_MAX_BODY_BYTES", int),
            "sync_deadline": ("HUB_SYNC_DEADLINE_SECONDS", float),
            "max_empty_pages": ("HUB_PAGING_MAX_EMPTY_PAGES", int),
            "paging_slack_share": ("HUB_PAGING_SLACK_SHARE", float),
            "paging_slack_items": ("HUB_PAGING_SLACK_ITEMS", int),
            "reauth_attempts": ("HUB_HTTP_REAUTH_ATTEMPTS", int),
            "page_concurrency": ("HUB_HTTP_PAGE_CONCURRENCY", int),
        }
        values: dict[str, Any] = {}
        for attr, (name, cast) in knobs.items():
            raw = _setting(settings, name)
            if raw is not None:
                values[attr] = cast(raw)
        return cls(**values)

    def backoff(self, attempt: int) -> float:
        """Sleep before body-level attempt ``attempt`` (1-based count of failures so far)."""
        return min(self.backoff_max, self.backoff_factor * (2 ** (attempt - 1)))


class _Retry(Retry):
    """urllib3 ``Retry`` whose ``Retry-After`` sleeps are capped (a maintenance page may ask for
    an hour; the sync should rather fail clearly and be retried by the schedule)."""

    retry_after_max: float = 120.0

    def get_retry_after(self, response):  # type: ignore[override]
        after = super().get_retry_after(response)
        return None if after is None else min(after, self.retry_after_max)

    def new(self, **kw):  # keep the cap on the copies urllib3 makes after every attempt
        new = super().new(**kw)
        new.retry_after_max = self.retry_after_max
        return new


class _TimeoutSession(requests.Session):
    """A session with default (connect, read) timeouts: ``requests`` has none by default and a
    hung platform would otherwise hang the sync forever."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


def make_retry(policy: HttpPolicy) -> Retry:
    retry = _Retry(
        total=policy.retries,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        status_forcelist=RETRY_STATUSES,
        # POST is only used for logins, which are safe to repeat.
        allowed_methods=frozenset({"GET", "HEAD", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # hand back the last response; Fetcher turns it into SourceError
        raise_on_redirect=False,
    )
    retry.retry_after_max = policy.retry_after_max
    return retry


def make_session(county: object, policy: HttpPolicy | None = None) -> requests.Session:
    """A ``requests.Session`` for one county: transport retries, timeouts and a User-Agent."""
    policy = policy or HttpPolicy.from_settings()
    session = _TimeoutSession((policy.connect_timeout, policy.read_timeout))
    adapter = HTTPAdapter(max_retries=make_retry(policy), pool_connections=4, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    slug = getattr(county, "slug", None)
    session.headers["User-Agent"] = f"{USER_AGENT} county={slug}" if slug else USER_AGENT
    session.headers["Accept"] = "application/json, */*;q=0.5"
    return session


def looks_like_html(body: bytes, content_type: str = "") -> bool:
    """True for an HTML page (gateway errors, login pages), whatever the status and headers say."""
    if "html" in content_type.lower():
        return True
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


@dataclass
class Fetched:
    """One HTTP exchange that produced a usable body."""

    url: str  # the final request URL, credentials stripped
    status: int
    body: bytes  # exactly as received
    content_type: str
    headers: Mapping[str, str]
    data: Any = None  # the parsed JSON when the request asked for JSON
    attempts: int = 1  # body-level attempts it took
    size: int = 0  # bytes received
    #: ``request(into=...)``: the file the 2xx body was written to as it arrived (``body`` is
    #: then empty) and its sha256
    file: Path | None = None
    sha256: str = ""


class TransientProblem(Exception):
    """Raised by a ``check`` callback: this response is a temporary failure, try again."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Attempt:
    """What one try of a request came to (``Fetcher._attempt``)."""

    shown: str  # the URL to name, credentials stripped
    problem: str  # the transient problem to retry; "" when ``fetched`` is usable
    retry_after: float | None = None
    fetched: Fetched | None = None


#: A body cut off or stalled after the headers arrived.
_CUT_OFF = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.Timeout,
    ProtocolError,
    ReadTimeoutError,
    DecodeError,
)


@dataclass
class Fetcher:
    """Performs requests for one county with body-level retries on top of the session's own.

    ``secrets`` returns the values to mask in any message (key, secret, current token)."""

    session: requests.Session
    county: object
    policy: HttpPolicy = field(default_factory=HttpPolicy)
    secrets: Callable[[], Iterable[str | None]] = lambda: ()
    sleep: Callable[[float], None] = time.sleep
    #: ``time.monotonic()`` after which no request starts and no body is read further (set per
    #: sync by ``PlatformClient.start_sync``); None = no deadline.
    deadline: float | None = None
    #: What the client is fetching ("members (person)"), named when the deadline passes.
    activity: str = ""

    def error(self, where: str, problem: str) -> SourceError:
        return SourceError(self.county, where, problem, secrets=self.secrets())

    def check_deadline(self, where: str) -> None:
        """``SourceError`` once the sync's deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            doing = f" while fetching {self.activity}" if self.activity else ""
            raise self.error(
                where,
                f"sync deadline of {self.policy.sync_deadline:g} s passed{doing}; "
                "the sync was stopped (HUB_SYNC_DEADLINE_SECONDS)",
            )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        parse_json: bool | Callable[[bytes], Any] = True,
        check: Callable[[Fetched], None] | None = None,
        max_bytes: int | None = None,
        into: Path | None = None,
    ) -> Fetched:
        """Send one logical request and return its response once it is usable.

        Retried here (bounded by ``policy.body_attempts``): interrupted transfers, HTML instead
        of JSON with a 2xx status, invalid/truncated JSON, and anything ``check`` declares
        transient by raising :class:`TransientProblem`. Raised as ``SourceError``: transport
        failures urllib3 already gave up on, 429/5xx after its retries, other non-2xx statuses
        without a JSON body, and whatever is still failing after the last attempt. A non-2xx
        response *with* a JSON body is returned for the caller to interpret (e.g. 401 + 40101).
        ``parse_json`` may be a fast decoder of the answer's usual shape (a listing page without
        Python objects for its records); where it fails, the body is parsed in full as below.
        ``into``: a 2xx body is written to this file as it arrives (each attempt rewrites it)
        instead of being held in memory: a large file download (``parse_json`` must be False).
        """
        shown = redact_url(requests.Request(method, url, params=params).prepare().url or url)
        send = {"params": params, "json": json_body, "data": form, "headers": headers, "auth": auth}
        problem = "no attempt made"
        for attempt in range(1, self.policy.body_attempts + 1):
            self.check_deadline(shown)
            outcome = self._attempt(
                method, url, shown, send, attempt, parse_json, check, max_bytes, into
            )
            if outcome.fetched is not None:
                return outcome.fetched
            shown, problem = outcome.shown, outcome.problem
            if attempt < self.policy.body_attempts:
                self._pause(attempt, outcome.retry_after, shown, problem)
        raise self.error(shown, f"{problem} (gave up after {self.policy.body_attempts} attempts)")

    def _attempt(
        self,
        method: str,
        url: str,
        shown: str,
        send: Mapping[str, Any],
        attempt: int,
        parse_json: bool | Callable[[bytes], Any],
        check: Callable[[Fetched], None] | None,
        max_bytes: int | None,
        into: Path | None = None,
    ) -> _Attempt:
        """One try: the usable response, or the transient problem to retry after (permanent
        failures raise ``SourceError``)."""
        try:
            # stream: the body is read by _read_body, bounded in size and time
            resp = self.session.request(method, url, stream=True, **send)
            # only a usable (2xx) body goes to the file; an error page is read to be named
            sink = BodyFile(into) if into is not None and 200 <= resp.status_code < 300 else None
            body = self._read_body(resp, redact_url(resp.url or shown), max_bytes, sink)
        except requests.exceptions.RetryError as exc:
            raise self.error(shown, f"gave up after retries: {_reason(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            if exc.args and isinstance(exc.args[0], MaxRetryError):
                # urllib3 already retried this connection failure policy.retries times.
                raise self.error(
                    shown, f"connection failed after {self.policy.retries} retries: {_reason(exc)}"
                ) from None
            return _Attempt(shown, f"transfer interrupted ({_reason(exc)})")
        except _LongerThanExpected as exc:
            return _Attempt(shown, str(exc))
        except _CUT_OFF as exc:
            # The body was cut off or stalled after the headers arrived: urllib3's retries
            # only cover getting the headers, so retry the whole request here.
            return _Attempt(shown, f"transfer interrupted ({_reason(exc)})")
        shown = redact_url(resp.url or shown)
        fetched = Fetched(
            url=shown,
            status=resp.status_code,
            body=body,
            content_type=resp.headers.get("Content-Type", ""),
            headers=dict(resp.headers),
            attempts=attempt,
        )
        if sink is not None:
            fetched.file, fetched.size, fetched.sha256 = into, sink.size, sink.digest.hexdigest()
        else:
            fetched.size = len(body)
        problem = self._problem(fetched, parse_json)
        if problem is None and check is not None:
            try:
                check(fetched)
            except TransientProblem as transient:
                return _Attempt(shown, transient.problem, transient.retry_after)
        if problem is None:
            return _Attempt(shown, "", fetched=fetched)
        return _Attempt(shown, problem)

    def _pause(self, attempt: int, retry_after: float | None, shown: str, problem: str) -> None:
        """Sleep before the next attempt: backoff, at least a capped ``Retry-After``, never
        past the sync's deadline."""
        delay = self.policy.backoff(attempt)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.policy.retry_after_max))
        if self.deadline is not None:  # never sleep past the deadline
            delay = max(0.0, min(delay, self.deadline - time.monotonic() + 0.01))
        log.warning(
            "%s: %s: %s; retrying in %.1fs (attempt %d of %d)",
            getattr(self.county, "label", self.county),
            shown,
            redact_text(problem, self.secrets()),
            delay,
            attempt,
            self.policy.body_attempts,
        )
        self.sleep(delay)

    def _read_body(
        self,
        resp: requests.Response,
        shown: str,
        max_bytes: int | None = None,
        sink: BodyFile | None = None,
    ) -> bytes:
        """The whole body, read as it arrives: refused past ``policy.max_body_bytes`` or the
        caller's ``max_bytes`` (a body that never ends) and stopped at the sync's deadline (a
        body that trickles in a byte at a time never trips the read timeout). With ``sink``
        the chunks go to its file, and the body returned is empty."""
        limit = self.policy.max_body_bytes
        if max_bytes is not None and max_bytes < limit:
            limit = max_bytes

        def too_long(size: int) -> Exception:
            if limit < self.policy.max_body_bytes:  # the caller's expectation: retried
                return _LongerThanExpected(f"more than the {limit:,} bytes expected arrived")
            return self.error(
                shown,
                f"answer refused at {size:,} bytes: more than {limit:,} bytes "
                "(HUB_HTTP_MAX_BODY_BYTES)",
            )

        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            resp.close()
            raise too_long(int(declared))
        chunks: list[bytes] = []
        size = 0
        keep = chunks.append if sink is None else sink.write
        try:
            with sink or nullcontext():
                while True:
                    self.check_deadline(shown)
                    chunk = resp.raw.read1(1 << 16, decode_content=True)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise too_long(size)
                    keep(chunk)
        except BaseException:
            resp.close()  # drop the connection: the rest of the body is unwanted
            raise
        resp.raw.release_conn()
        return b"".join(chunks)

    def _problem(self, fetched: Fetched, parse_json: bool | Callable[[bytes], Any]) -> str | None:
        """A transient problem to retry, None when usable; raises for permanent failures."""
        status = fetched.status
        if status in RETRY_STATUSES:
            # urllib3 has already spent its retries on this status.
            raise self.error(
                fetched.url,
                f"HTTP {status}{_message_hint(fetched.body)} after {self.policy.retries} retries",
            )
        if not 200 <= status < 300:
            if parse_json and not looks_like_html(fetched.body, fetched.content_type):
                try:
                    fetched.data = parse_json_body(fetched.body)
                    return None  # e.g. 401 with an envelope: the client interprets it
                except (ValueError, UnusableJson):
                    pass
            raise self.error(fetched.url, f"HTTP {status}{_message_hint(fetched.body)}")
        if not parse_json:
            return None
        if looks_like_html(fetched.body, fetched.content_type):
            return f"HTML page instead of JSON (HTTP {status}, likely a gateway error page)"
        if callable(parse_json):
            try:
                fetched.data = parse_json(fetched.body)
                return None
            except Exception:  # the full parse below says what is wrong, as always
                pass
        try:
            fetched.data = parse_json_body(fetched.body)
        except UnusableJson as exc:  # the same bytes will come again: no point retrying
            raise self.error(fetched.url, f"{exc} (HTTP {status})") from None
        except ValueError as exc:
            return f"{describe_json_error(fetched.body, exc)} (HTTP {status})"
        return None


class _LongerThanExpected(Exception):
    """More bytes arrived than the caller expected (a file's size from its index): retried."""


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a transport exception."""
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None) or inner
    text = type(reason).__name__ if isinstance(reason, BaseException) else ""
    detail = str(reason)
    # urllib3 messages embed the connection pool repr and the URL; keep the tail only.
    if "):" in detail:
        detail = detail.rsplit("):", 1)[-1]
    detail = detail.strip(" '\"()")[:160]
    return f"{text}: {detail}" if text and detail else text or detail or type(exc).__name__


def _message_hint(body: bytes) -> str:
    """``": <message>"`` from a JSON error body (``message``/``msg``), else an empty string."""
    if not body or looks_like_html(body):
        return ""
    try:
        data = parse_json_body(body)
    except (ValueError, UnusableJson):
        return ""
    if isinstance(data, dict):
        msg = data.get("message") or data.get("msg")
        code = data.get("code")
        if msg or code is not None:
            return f" (code {code}: {str(msg)[:120]})"
    return ""


@dataclass(frozen=True)
class SourceSettings:
    """A county's connection settings: ``HUB_<SLUG>_URL``, ``_KEY``, ``_SECRET``."""

    url: str
    key: str | None
    secret: str | None

    def __repr__(self) -> str:  # never print credentials, even in a debugger or a traceback
        return f"SourceSettings(url={redact_url(self.url)!r}, key=***, secret=***)"


def source_settings(county: Any, settings: Mapping[str, str] | None = None) -> SourceSettings:
    """Resolve a county's settings from ``settings`` (keys ``HUB_<SLUG>_URL``, ``URL`` or
    ``url``: ``pipelines.sources.connection_settings``),
    falling back to the environment."""

    def get(name: str) -> str | None:
        if settings:
            for key in (county.env_prefix + name, name, name.lower()):
                if settings.get(key):
                    return settings[key]
        return county.setting(name)

    url = get("URL")
    if not url:
        raise SourceError(
            county, county.env_prefix + "URL", "not set: the county's platform URL is unknown"
        )
    return SourceSettings(url=url.rstrip("/"), key=get("KEY"), secret=get("SECRET"))


class PlatformClient:
    """What the three clients share: settings, session, fetcher, and secret masking.

    Subclasses implement ``fetch(mode, watermarks) -> Iterator[Page]``."""

    kind = ""

    def __init__(
        self,
        county: Any,
        settings: SourceSettings,
        policy: HttpPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.county = county
        self.settings = settings
        self.base_url = settings.url
        self.policy = policy or HttpPolicy.from_settings()
        self.session = session or make_session(county, self.policy)
        if urlsplit(self.base_url).hostname in ("127.0.0.1", "localhost", "::1"):
            # The embedded simulator: an intranet HTTP_PROXY must not capture loopback traffic.
            self.session.trust_env = False
        self._token: str | None = None
        self.fetcher = Fetcher(self.session, county, self.policy, secrets=self._secrets)

    @classmethod
    def from_county(cls, county: Any, settings: Mapping[str, str] | None = None):
        """Build the client from ``HUB_<SLUG>_URL/_KEY/_SECRET`` (``settings`` first, then the
        environment) and the ``HUB_HTTP_*`` retry knobs."""
        return cls(county, source_settings(county, settings), HttpPolicy.from_settings(settings))

    def _secrets(self) -> tuple[str | None, ...]:
        return (self.settings.key, self.settings.secret, self._token)

    def start_sync(self) -> None:
        """Start the per-sync deadline (``HUB_SYNC_DEADLINE_SECONDS``): every request and body
        read after it raises ``SourceError``. Clients call it when ``fetch`` begins."""
        self.fetcher.deadline = time.monotonic() + self.policy.sync_deadline
        self.fetcher.activity = ""

    def fetching(self, what: str) -> None:
        """Name what is being fetched, for the deadline's message ("members (person)")."""
        self.fetcher.activity = what

    def token_refused(self, where: str, refusals: int, problem: str) -> None:
        """The platform refused a fresh token ``refusals`` times for one request: pause with
        backoff and let the caller authenticate again, up to ``policy.reauth_attempts`` times
        (tokens can expire twice in a row when the platform's clock or cache is off); then fail.
        A refused *login* never gets here: it fails at once."""
        if refusals > self.policy.reauth_attempts:
            raise self.error(
                where,
                f"{problem} {refusals} times in a row, {refusals - 1} of them right after "
                f"re-authenticating (HUB_HTTP_REAUTH_ATTEMPTS={self.policy.reauth_attempts})",
            )
        if refusals > 1:
            delay = self.policy.backoff(refusals - 1)
            log.warning(
                "%s: %s: %s; re-authenticating again in %.1fs (%d of %d)",
                getattr(self.county, "label", self.county),
                where,
                problem,
                delay,
                refusals,
                self.policy.reauth_attempts,
            )
            self.fetcher.sleep(delay)

    def error(self, where: str, problem: str) -> SourceError:
        return SourceError(self.county, where, problem, secrets=self._secrets())

    @staticmethod
    def check_mode(mode: str) -> None:
        if mode not in ("full", "incremental"):
            raise ValueError(f"mode must be 'full' or 'incremental', not {mode!r}")

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.county, 'slug', self.county)!r}, {redact_url(self.base_url)!r})"
