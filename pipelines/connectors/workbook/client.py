"""Client of the workbook drop (``shared/platforms/workbook.md``): 柞水县 (xlsx) and 丹凤县 (csv).

Each file is a full snapshot of a county's register. The client lands the index and every file
uploaded after the one named in watermark ``file`` (all files on the first sync), each verified
against the index's size and sha256. In a landing (``pipelines.landing.land``) a file is written
to the landing directory as it arrives (``spool_dir``), never held in memory: the landing moves
it into place once it is verified; a download that fails leaves no file behind. Whether a file's *content* is usable (truncated upload,
wrong sheet, not a workbook at all) is the normaliser's call, not this module's.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipelines.http import Fetched, PlatformClient, TransientProblem
from pipelines.landing import Page, disk_errors
from schemas.sanity import future_limit

log = logging.getLogger(__name__)

INDEX_PATH = "/exports/index.json"
FILE_PATH = "/exports/"
FILE_KINDS = {"register", None}  # the index may grow other kinds; only registers are synced


BEIJING = timezone(timedelta(hours=8))
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: What the contract's file names are made of (``柞水县建档立卡贫困人口明细_20160701.xlsx``,
#: ``丹凤县贫困人口_20160701.csv``, a second upload of the day ``…_20160701_1.csv``): one path
#: segment of letters (Chinese included), digits, ``_ - . ( ) （ ）`` and spaces, ending in .xlsx or
#: .csv. Anything else (``../../etc/x.xlsx``, ``a/b.csv``, ``%2e%2e``, control characters) is
#: refused before it reaches a URL or a file name.
FILE_NAME = re.compile(r"[\w\-.()（） ]{1,200}\.(?:xlsx|csv)")


def file_name_problem(name: object) -> str | None:
    """Why a file name from the index is not one the contract allows, or None when it is."""
    if not isinstance(name, str):
        return f"file name {name!r:.80} is not text"
    if not FILE_NAME.fullmatch(name) or name.startswith(".") or ".." in name:
        return (
            f"file name {name[:120]!r} is not one the contract allows (one plain file name "
            "ending in .xlsx or .csv, no path, no '..'); it was not requested"
        )
    return None


def _uploaded(entry: Mapping[str, Any]) -> datetime | None:
    try:
        dt = datetime.fromisoformat(str(entry.get("uploadedAt")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=BEIJING)


def _uploaded_utc(entry: Mapping[str, Any]) -> datetime:
    """``uploadedAt`` in UTC, for sorting (offsets compared without overflow at year 9999)."""
    dt = _uploaded(entry)
    assert dt is not None  # checked by _index
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def _in_future(entry: Mapping[str, Any], limit: datetime) -> bool:
    return _uploaded_utc(entry) > limit


class WorkbookClient(PlatformClient):
    kind = "workbook"
    skipped: list[str] = []  # noqa: RUF012  (set per select(); names of future uploads)
    #: where a file is written as it arrives (set by ``landing.land`` to the landing's
    #: directory); None: held in memory (``Page.body``)
    spool_dir: Path | None = None

    @property
    def _auth(self) -> tuple[str, str] | None:
        # Basic auth is optional and configured per county.
        if self.settings.key and self.settings.secret:
            return (self.settings.key, self.settings.secret)
        return None

    def _index(self) -> tuple[Fetched, list[dict]]:
        self.fetching("the file index")
        fetched = self.fetcher.request("GET", self.base_url + INDEX_PATH, auth=self._auth)
        files = fetched.data.get("files") if isinstance(fetched.data, dict) else None
        if not isinstance(files, list):
            raise self.error(fetched.url, "index has no 'files' list")
        seen: dict[str, str] = {}
        for n, entry in enumerate(files):
            if not isinstance(entry, dict) or not all(
                entry.get(k) not in (None, "") for k in ("name", "sha256", "size", "uploadedAt")
            ):
                raise self.error(
                    fetched.url,
                    f"index entry {n} lacks name/sha256/size/uploadedAt: {entry!r:.160}",
                )
            if entry.get("kind") not in FILE_KINDS:
                continue  # not a register: never fetched, so its name does not matter
            name = entry["name"]
            problem = file_name_problem(name)
            if problem:
                raise self.error(fetched.url, f"index entry {n}: {problem}")
            if _uploaded(entry) is None:
                raise self.error(fetched.url, f"index entry {name!r} has a bad uploadedAt")
            size = entry["size"]
            if type(size) is not int or size < 0:
                raise self.error(
                    fetched.url, f"index entry {name!r}: size {size!r:.40} is not a count of bytes"
                )
            if size > self.policy.max_body_bytes:
                raise self.error(
                    fetched.url,
                    f"index entry {name!r}: {size:,} bytes, more than the {self.policy.max_body_bytes:,} "
                    "accepted (HUB_HTTP_MAX_BODY_BYTES)",
                )
            sha = entry["sha256"]
            if not isinstance(sha, str) or not SHA256.fullmatch(sha):
                raise self.error(
                    fetched.url, f"index entry {name!r}: sha256 {sha!r:.80} is not 64 hex digits"
                )
            if seen.get(name, sha.lower()) != sha.lower():
                # files are never changed after upload (workbook.md): two contents, one name
                raise self.error(
                    fetched.url, f"index lists {name!r} twice with different contents (sha256)"
                )
            seen[name] = sha.lower()
        return fetched, files

    def export_names(self) -> list[str]:
        """The names in the export index, in its order (what the new-file sensor compares with
        the last file merged); the index is checked as for a sync."""
        _, files = self._index()
        return [f["name"] for f in files]

    def select(self, files: list[dict], mode: str, last_file: str | None) -> list[dict]:
        """The register files to land, oldest first: those uploaded after ``last_file`` (all
        of them when there is none). A full sync with nothing new re-lands the latest file,
        so it always carries a complete snapshot."""
        registers = [f for f in files if f.get("kind") in FILE_KINDS]
        # An upload time later than the hub's clock (plus skew) is a clock or typing error: such
        # a file would sort after every real upload and, once processed, hide them all (the
        # workbook's poisoned watermark). It is left out until its time has come.
        limit = future_limit()
        self.skipped = [f["name"] for f in registers if _in_future(f, limit)]
        for name in self.skipped:
            log.warning(
                "%s: index entry %r has uploadedAt in the future; not synced",
                self.county.label,
                name,
            )
        registers = [f for f in registers if f["name"] not in self.skipped]
        # Sort by upload time, index order breaking ties (the index is oldest first).
        ordered = [
            f for _, _, f in sorted((_uploaded_utc(f), n, f) for n, f in enumerate(registers))
        ]
        if not last_file:
            return ordered
        names = [f["name"] for f in ordered]
        if last_file not in names:
            raise self.error(
                self.base_url + INDEX_PATH,
                f"the last processed file {last_file!r} (watermark 'file') is not in the index; "
                "reset the county's 'file' watermark to resync from its first file",
            )
        new = ordered[names.index(last_file) + 1 :]
        if not new and mode == "full" and ordered:
            return ordered[-1:]
        return new

    def _download(self, entry: dict) -> Fetched:
        name = entry["name"]
        expected_sha = str(entry["sha256"]).lower()
        expected_size = int(entry["size"])

        def verify(fetched: Fetched) -> None:
            # A mismatch is usually a transfer cut short or a gateway page; retried, and a
            # SourceError naming the file once attempts run out.
            size = fetched.size
            if size != expected_size:
                raise TransientProblem(
                    f"file {name}: {size} bytes received, the index says {expected_size}"
                )
            digest = fetched.sha256 or hashlib.sha256(fetched.body).hexdigest()
            if digest != expected_sha:
                raise TransientProblem(
                    f"file {name}: sha256 {digest[:16]}… does not match the index's "
                    f"{expected_sha[:16]}…"
                )

        # The name was checked against the contract (file_name_problem) and is quoted whole, "/"
        # included: it can only ever name a file under /exports/.
        url = self.base_url + FILE_PATH + quote(name, safe="")
        self.fetching(f"file {name}")
        if self.spool_dir is None:
            return self.fetcher.request(
                "GET", url, auth=self._auth, parse_json=False, check=verify,
                max_bytes=expected_size,
            )  # fmt: skip
        # ".part": a landing killed mid-download leaves it to landing.remove_leftovers
        into = self.spool_dir / f".download-{secrets.token_hex(4)}.part"
        try:
            with disk_errors(self.county.label, "downloading a file", into):
                return self.fetcher.request(
                    "GET", url, auth=self._auth, parse_json=False, check=verify,
                    max_bytes=expected_size, into=into,
                )  # fmt: skip
        except BaseException:
            into.unlink(missing_ok=True)  # nothing half-downloaded stays
            raise

    def fetch(self, mode: str, watermarks: Mapping[str, str] | None = None) -> Iterator[Page]:
        self.check_mode(mode)
        self.start_sync()
        watermarks = watermarks or {}
        index, files = self._index()
        chosen = self.select(files, mode, watermarks.get("file"))
        yield Page(
            entity="index",
            url=index.url,
            body=index.body,
            content_type=index.content_type,
            meta={
                "files": len(files),
                "selected": [f["name"] for f in chosen],
                "skipped_future": self.skipped,
                "mode": mode,
            },
        )
        for entry in chosen:
            fetched = self._download(entry)
            yield Page(
                entity="file",
                url=fetched.url,
                body=fetched.body,
                content_type=fetched.content_type,
                file=fetched.file,
                meta={
                    "name": entry["name"],
                    "sha256": str(entry["sha256"]).lower(),
                    "size": int(entry["size"]),
                    "exportDate": entry.get("exportDate"),
                    "uploadedAt": entry.get("uploadedAt"),
                    "kind": entry.get("kind"),
                },
            )
