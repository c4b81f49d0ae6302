"""A response body (``pipelines.http.Fetcher``): written to a file as it arrives, or parsed as
JSON the hub accepts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO


class BodyFile:
    """Where ``Fetcher.request(into=...)`` writes a body: the file (truncated: a retry starts
    it over), its size and running sha256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.digest = hashlib.sha256()
        self._file: BinaryIO | None = None

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "written outside its with block"
        self._file.write(chunk)
        self.size += len(chunk)
        self.digest.update(chunk)

    def __enter__(self) -> BodyFile:
        self._file = self.path.open("wb")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


class UnusableJson(Exception):
    """A body that parses as no JSON the hub accepts, and never will on a retry: ``NaN`` /
    ``Infinity`` (not JSON, RFC 8259), or nesting too deep to parse."""


def _no_constants(name: str) -> Any:
    raise UnusableJson(f"the JSON holds {name}, which is not a JSON number (RFC 8259)")


def parse_json_body(body: bytes) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity`` and turns runaway nesting into
    :class:`UnusableJson` instead of a bare ``RecursionError``."""
    try:
        return json.loads(body, parse_constant=_no_constants)
    except RecursionError:
        raise UnusableJson(
            f"the JSON is nested too deeply to parse ({len(body):,} bytes; "
            "a hostile or broken answer)"
        ) from None


def describe_json_error(body: bytes, exc: ValueError) -> str:
    """What is wrong with a body that is not JSON: empty, cut off, or not JSON at all."""
    if not body.strip():
        return "empty body instead of JSON"
    if isinstance(exc, json.JSONDecodeError):
        # the input ended mid-value: what a transfer cut short looks like
        if exc.pos >= len(exc.doc.rstrip()) - 1 or exc.msg.startswith("Unterminated string"):
            return f"truncated JSON: the body ends mid-value after {len(body):,} bytes ({exc.msg})"
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno} ({len(body):,} bytes)"
    return f"not JSON ({type(exc).__name__}: {str(exc)[:120]})"
