"""Raw landing: every payload a client fetches is written to disk exactly as received, before
anything parses it, so any sync can be replayed from the files without the source.

Layout (``root`` defaults to ``base.paths.landing_dir()``)::

    <root>/<slug>/<sync_id>/00001-household.json      one file per page, written on arrival
    <root>/<slug>/<sync_id>/manifest.partial.jsonl    one line per landed page (crash-safe)
    <root>/<slug>/<sync_id>/manifest.json             written by LandingWriter.close()
    <root>/<slug>/<sync_id>/.writing                  flock held while the landing runs

A page is written as ``<name>.part`` then renamed; a landing killed mid-write leaves that
``.part`` behind, and the next landing of the county removes it (``remove_leftovers``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from base.errors import HubError, ResourceError, SourceError, resource_cause
from base.paths import landing_dir
from base.processes import flock_held

__all__ = [
    "LandedPage",
    "LandingWriter",
    "Manifest",
    "Page",
    "land",
    "new_sync_id",
    "read_manifest",
    "remove_leftovers",
    "verify",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PARTIAL = "manifest.partial.jsonl"
WRITING = ".writing"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Page:
    """One payload as a client received it (Contract 2)."""

    entity: (
        str  # canonical entity name, or "deletions:<entity>", "stats", "index", "file", "listing"
    )
    url: str  # the request URL without credentials
    body: bytes  # exactly as received
    content_type: str
    meta: dict = field(default_factory=dict)  # e.g. cursor, pageNum, total, file name, sha256
    #: a large body already written to this file as it arrived (``body`` is then empty): the
    #: landing moves the file into place instead of writing bytes (a workbook register)
    file: Path | None = None

    def content(self) -> bytes:
        """The payload's bytes, from ``body`` or ``file``."""
        return self.file.read_bytes() if self.file is not None else self.body


@dataclass(frozen=True)
class LandedPage:
    """A page stored on disk, as listed in a manifest."""

    page_id: str  # "<slug>:<sync_id>:<seq>"
    seq: int
    entity: str
    url: str
    path: Path  # absolute path of the stored body
    rel_path: str  # path relative to the landing root, as in the manifest
    sha256: str
    size: int
    content_type: str
    fetched_at: str  # ISO-8601 UTC
    meta: dict
    county: str = ""  # slug, for error messages

    def body(self) -> bytes:
        """The stored bytes, verified against the manifest's sha256."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SourceError(self.county, self.path, f"landed page unreadable: {exc}") from None
        self._verify(hashlib.sha256(data).hexdigest())
        return data

    def verified_path(self) -> Path:
        """The stored file, once its bytes match the manifest's sha256: read in blocks, so a
        large file (a workbook register) is never held whole."""
        digest = hashlib.sha256()
        try:
            with self.path.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        except OSError as exc:
            raise SourceError(self.county, self.path, f"landed page unreadable: {exc}") from None
        self._verify(digest.hexdigest())
        return self.path

    def _verify(self, digest: str) -> None:
        if digest != self.sha256:
            raise SourceError(
                self.county,
                self.path,
                f"landed page {self.page_id} is corrupt: sha256 {digest[:12]}… "
                f"does not match the manifest's {self.sha256[:12]}…",
            )

    def json(self) -> Any:
        return json.loads(self.body())

    def to_record(self) -> dict:
        return {
            "page_id": self.page_id,
            "seq": self.seq,
            "entity": self.entity,
            "url": self.url,
            "fetched_at": self.fetched_at,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "path": self.rel_path,
            "meta": self.meta,
        }


@dataclass(frozen=True)
class Manifest:
    """The pages of one county sync, in landing order."""

    path: Path  # the manifest file (manifest.json, or the partial journal of an unclosed sync)
    root: Path  # the landing root the page paths are relative to
    county: str  # slug
    county_code: str
    kind: str
    version: str
    sync_id: str
    started_at: str
    closed_at: str | None
    complete: bool  # False when the sync failed or never closed
    pages: tuple[LandedPage, ...]
    #: how the landing started: mode, the cursors it fetched from (``watermarks_before``) and
    #: where they came from; lets a replay rebuild the sync from the directory alone
    sync: dict = field(default_factory=dict)

    def entity_pages(self, entity: str) -> list[LandedPage]:
        return [p for p in self.pages if p.entity == entity]

    @property
    def entities(self) -> list[str]:
        return list(dict.fromkeys(p.entity for p in self.pages))


def new_sync_id(now: datetime | None = None) -> str:
    """``20160701T182000.123456Z-3f9a1c``: a UTC timestamp to the microsecond, so ids sort in
    landing order (replays rely on it), plus a short random suffix so that two syncs never share
    a directory."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]+")


def _file_stem(entity: str) -> str:
    # "deletions:household" -> "deletions-household"; file names stay portable.
    return _UNSAFE.sub("-", entity).strip("-") or "page"


def _extension(page: Page) -> str:
    name = page.meta.get("name") if isinstance(page.meta, dict) else None
    if isinstance(name, str) and "." in name:
        ext = _UNSAFE.sub("", name.rsplit(".", 1)[-1].lower())
        if ext:
            return ext
    ctype = page.content_type.lower()
    if "json" in ctype:
        return "json"
    if "html" in ctype:
        return "html"
    if "csv" in ctype:
        return "csv"
    if "spreadsheetml" in ctype:
        return "xlsx"
    stripped = page.body[:1].lstrip()
    if stripped in (b"{", b"["):
        return "json"
    return "bin"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LandingWriter:
    """Stores one county sync's pages as they arrive and indexes them in ``manifest.json``.

    Use as a context manager, or call :meth:`close` yourself; a sync that raised is closed with
    ``complete: false`` so its pages stay listed for debugging but are never merged by mistake.
    """

    def __init__(
        self,
        county: Any,
        sync_id: str | None = None,
        root: Path | None = None,
        sync: Mapping[str, Any] | None = None,
    ) -> None:
        self.county = county
        self.slug = county.slug
        self.sync_id = sync_id or new_sync_id()
        self.root = Path(root) if root is not None else landing_dir()
        self.dir = self.root / self.slug / self.sync_id
        self.sync = dict(sync or {})
        self.started_at = _now_iso()
        self.pages: list[LandedPage] = []
        self._closed: Path | None = None
        with self._disk("creating the landing directory", self.dir):
            self.dir.mkdir(parents=True, exist_ok=False)
            # held until close (or the process dies): tells remove_leftovers this one is alive
            self._writing = os.open(self.dir / WRITING, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._writing, fcntl.LOCK_EX)
            self._journal = (self.dir / PARTIAL).open("a", encoding="utf-8")

    def _disk(self, action: str, path: Path):
        return disk_errors(getattr(self.county, "label", self.slug), action, path)

    def __enter__(self) -> LandingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed is None:
            if exc_type is None:
                self.close()
                return
            try:  # the error that ended the landing is the one to report
                self.close(complete=False)
            except Exception as close_error:
                log.warning("%s: could not close the failed landing: %s", self.slug, close_error)

    def write(self, page: Page) -> LandedPage:
        """Store ``page.body`` now (atomically) and journal it; returns its manifest entry."""
        if self._closed is not None:
            raise RuntimeError(f"landing {self.dir} is already closed")
        seq = len(self.pages) + 1
        name = f"{seq:05d}-{_file_stem(page.entity)}.{_extension(page)}"
        target = self.dir / name
        tmp = target.with_name(name + ".part")
        # Atomic rename, no fsync: a sync has thousands of pages and a crash only means
        # fetching again; what must never happen is a half-written file under the final name.
        with self._disk("landing a page", target):
            try:
                if page.file is not None:
                    size, digest = _moved(page.file, tmp)
                else:
                    tmp.write_bytes(page.body)
                    size, digest = len(page.body), hashlib.sha256(page.body).hexdigest()
                os.replace(tmp, target)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise
        landed = LandedPage(
            page_id=f"{self.slug}:{self.sync_id}:{seq}",
            seq=seq,
            entity=page.entity,
            url=page.url,
            path=target,
            rel_path=target.relative_to(self.root).as_posix(),
            sha256=digest,
            size=size,
            content_type=page.content_type,
            fetched_at=_now_iso(),
            meta=dict(page.meta),
            county=self.slug,
        )
        with self._disk("journalling a page", self.dir / PARTIAL):
            self._journal.write(json.dumps(landed.to_record(), ensure_ascii=False) + "\n")
            self._journal.flush()
        self.pages.append(landed)
        return landed

    def write_all(self, pages: Iterable[Page]) -> list[LandedPage]:
        return [self.write(p) for p in pages]

    def close(self, complete: bool = True) -> Path:
        """Write ``manifest.json`` (atomically) and return its path. Idempotent."""
        if self._closed is not None:
            return self._closed
        try:
            with self._disk("closing the landing", self.dir / MANIFEST):
                return self._close(complete)
        finally:
            os.close(self._writing)  # the landing is over, whatever happened

    def _close(self, complete: bool) -> Path:
        with suppress(OSError):  # a full disk fails the flush; writing the manifest says so
            self._journal.close()
        doc = {
            "manifest_version": MANIFEST_VERSION,
            "county": self.slug,
            "county_code": getattr(self.county, "code", ""),
            "kind": getattr(self.county, "kind", ""),
            "version": getattr(self.county, "version", ""),
            "sync_id": self.sync_id,
            "started_at": self.started_at,
            "closed_at": _now_iso(),
            "complete": complete,
            "sync": self.sync,
            "pages": [p.to_record() for p in self.pages],
        }
        target = self.dir / MANIFEST
        tmp = target.with_name(MANIFEST + ".part")
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, target)
        (self.dir / PARTIAL).unlink(missing_ok=True)
        self._closed = target
        return target


def _moved(source: Path, target: Path) -> tuple[int, str]:
    """Move a body the client wrote as it arrived (``Page.file``) to ``target``; its size and
    sha256, read back in blocks (the manifest records what is on disk)."""
    shutil.move(source, target)  # a rename when both are in the landing directory
    digest, size = hashlib.sha256(), 0
    with target.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _landed(record: dict, root: Path, slug: str) -> LandedPage:
    return LandedPage(
        page_id=record["page_id"],
        seq=int(record.get("seq") or record["page_id"].rsplit(":", 1)[-1]),
        entity=record["entity"],
        url=record["url"],
        path=root / record["path"],
        rel_path=record["path"],
        sha256=record["sha256"],
        size=int(record["size"]),
        content_type=record.get("content_type", ""),
        fetched_at=record.get("fetched_at", ""),
        meta=record.get("meta") or {},
        county=slug,
    )


def read_manifest(path: Path | str) -> Manifest:
    """Read a sync's manifest: ``path`` is ``manifest.json`` or the sync directory.

    A directory whose sync never closed (a crash) is read from its partial journal, with
    ``complete`` False."""
    path = Path(path)
    sync_dir = path if path.is_dir() else path.parent
    root = sync_dir.parent.parent  # <root>/<slug>/<sync_id>/
    manifest = sync_dir / MANIFEST
    if manifest.exists():
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        slug = doc["county"]
        return Manifest(
            path=manifest,
            root=root,
            county=slug,
            county_code=doc.get("county_code", ""),
            kind=doc.get("kind", ""),
            version=str(doc.get("version", "")),
            sync_id=doc["sync_id"],
            started_at=doc.get("started_at", ""),
            closed_at=doc.get("closed_at"),
            complete=bool(doc.get("complete", True)),
            pages=tuple(_landed(r, root, slug) for r in doc["pages"]),
            sync=doc.get("sync") or {},
        )
    partial = sync_dir / PARTIAL
    if not partial.exists():
        raise FileNotFoundError(f"no {MANIFEST} or {PARTIAL} in {sync_dir}")
    slug = sync_dir.parent.name
    records = [
        json.loads(line) for line in partial.read_text(encoding="utf-8").splitlines() if line
    ]
    return Manifest(
        path=partial,
        root=root,
        county=slug,
        county_code="",
        kind="",
        version="",
        sync_id=sync_dir.name,
        started_at="",
        closed_at=None,
        complete=False,
        pages=tuple(_landed(r, root, slug) for r in records),
    )


def land(
    county: Any,
    client: Any,
    mode: str,
    watermarks: Mapping[str, str],
    *,
    sync_id: str | None = None,
    root: Path | None = None,
    sync: Mapping[str, Any] | None = None,
    on_page: Callable[[LandedPage], None] | None = None,
) -> Manifest:
    """Fetch one sync from ``client`` (``pipelines.sources.client_for(county)``) and land every
    page as it arrives; returns the manifest. ``on_page``: called with each page once it is
    landed (``pipelines.staging_alongside``).

    If the client raises (``SourceError``), the pages already landed are kept in a manifest with
    ``complete: false`` and the error propagates."""
    remove_leftovers(county, root)
    with LandingWriter(county, sync_id, root, sync={"mode": mode, **(sync or {})}) as writer:
        if hasattr(client, "spool_dir"):  # large bodies are written here as they arrive
            client.spool_dir = writer.dir
        for page in client.fetch(mode, watermarks):
            landed = writer.write(page)
            if on_page is not None:
                on_page(landed)
    return read_manifest(writer.dir)


@contextmanager
def disk_errors(county_label: str, action: str, path: Path):
    """Turn a disk-full or permission error into a ResourceError naming county, file, cause
    (also when DuckDB or polars report it, staging: ``pipelines.staging``)."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        cause = resource_cause(exc)
        if cause is None:
            raise
        raise ResourceError(county_label, path, action, cause) from exc


def verify(manifest: Manifest, county_label: str | None = None) -> None:
    """Check every landed page of ``manifest`` against its recorded size and sha256 (a replay
    must not merge a truncated or altered page); raises SourceError naming the first bad one."""
    for page in manifest.pages:
        who = county_label or page.county
        try:
            size = page.path.stat().st_size
        except OSError as exc:
            raise SourceError(who, page.path, f"landed page missing: {exc}") from None
        if size != page.size:
            raise SourceError(
                who,
                page.path,
                f"landed page {page.page_id} is {size} bytes, the manifest says {page.size}: "
                "truncated or altered; refused",
            )
        try:
            page.body()  # verifies the sha256
        except SourceError as exc:
            raise SourceError(who, page.path, exc.problem + "; refused") from None


def remove_leftovers(county: Any, root: Path | None = None) -> list[Path]:
    """Remove the ``.part`` files that landings of ``county`` killed mid-write left behind
    (skipping a landing that is still running: its ``.writing`` lock is held)."""
    root = Path(root) if root is not None else landing_dir()
    removed: list[Path] = []
    county_dir = root / county.slug
    if not county_dir.is_dir():
        return removed
    for sync_dir in county_dir.iterdir():
        parts = list(sync_dir.glob("*.part")) if sync_dir.is_dir() else []
        if not parts or _landing_alive(sync_dir):
            continue
        for part in parts:
            with suppress(FileNotFoundError):
                part.unlink()
                removed.append(part)
    if removed:
        log.warning(
            "%s: removed %d leftover .part file(s) of killed landings", county.slug, len(removed)
        )
    return removed


def _landing_alive(sync_dir: Path) -> bool:
    return flock_held(sync_dir / WRITING, exclusive=True)
