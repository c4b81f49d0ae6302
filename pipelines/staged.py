"""What a normaliser hands to validation and the merge (architecture.md, Contract 3)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from base.errors import SourceError

#: Layout of a deletion frame: the platform's key of the deleted record and when it went.
DELETION_SCHEMA: dict[str, pl.DataType] = {
    "source_key": pl.String(),
    "deleted_at": pl.Datetime("us", "UTC"),
}


@dataclass
class Staged:
    """The canonical content of one county sync, ready for validation.

    - ``frames``: entity -> canonical frame (``schemas.columns.conform``ed), one row per key.
    - ``deletions``: entity -> ``{source_key, deleted_at}`` (the bigdata deletion feed).
    - ``full_listing``: entities listed in full in this sync: a key absent from such a listing
      has been deleted at the source.
    - ``source_counts``: the source's own count of live records per entity (bigdata ``stats``,
      battle listing totals of full listings, workbook rows).
    - ``watermarks``: the cursors to commit in the same transaction as the merge.
    - ``as_of``: the export date of a workbook snapshot (None for the live platforms).
    - ``files``: entity -> its canonical frame already written as Parquet by a streaming
      normaliser (``pipelines.staging``), instead of a frame in ``frames``: never read into
      memory on the write side; ``save`` moves it into place.
    """

    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    deletions: dict[str, pl.DataFrame] = field(default_factory=dict)
    full_listing: set[str] = field(default_factory=set)
    source_counts: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, str] = field(default_factory=dict)
    as_of: date | None = None
    files: dict[str, Path] = field(default_factory=dict)
    #: entity -> its verified Parquet files, in row order (``open_verified``, the merge side):
    #: the frames are then read lazily (``scan``, DuckDB ``read_parquet``), never held whole
    parts: dict[str, list[Path]] = field(default_factory=dict)
    #: entity -> rows in ``parts`` (from staged.json, checked against the Parquet footers)
    heights: dict[str, int] = field(default_factory=dict)

    def entities(self) -> list[str]:
        """Every entity with staged rows, in memory or on disk."""
        return list(dict.fromkeys([*self.frames, *self.parts, *self.files]))

    def height(self, entity: str) -> int | None:
        """Rows staged for ``entity`` (None: the entity was not staged)."""
        if entity in self.frames:
            return self.frames[entity].height
        if entity in self.files and entity not in self.parts:
            return pl.scan_parquet(self.files[entity]).select(pl.len()).collect().item()
        return self.heights.get(entity)

    def scan(self, entity: str, columns: list[str] | None = None) -> pl.LazyFrame | None:
        """The staged rows of ``entity`` as a lazy frame (only ``columns`` when given), read
        from the Parquet files when the sync was opened lazily."""
        if entity in self.frames:
            lazy = self.frames[entity].lazy()
        elif entity in self.parts:
            lazy = pl.scan_parquet(self.parts[entity])
        elif entity in self.files:
            lazy = pl.scan_parquet(self.files[entity])
        else:
            return None
        return lazy.select(columns) if columns is not None else lazy


def empty_deletions() -> pl.DataFrame:
    return pl.DataFrame(schema=DELETION_SCHEMA)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(staged: Staged, directory: Path) -> Path:
    """Write a staged sync beside its landed pages (Parquet frames + a JSON header), so the
    merge step — the only one holding the warehouse — does not parse payloads itself.

    The header is written last and lists every file with its sha256 and row count: a staged
    directory without a header is unfinished, and a file changed since is refused by ``load``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "staged.json").unlink(missing_ok=True)
    files: dict[str, dict] = {}
    for kind, frames in (("frame", staged.frames), ("deletions", staged.deletions)):
        for entity, df in frames.items():
            path = directory / f"{kind}.{entity}.parquet"
            df.write_parquet(path, compression="lz4")
            files[path.name] = {"sha256": _sha256(path), "rows": df.height}
    for entity, written in staged.files.items():
        path = directory / f"frame.{entity}.parquet"
        if Path(written) != path:
            os.replace(written, path)
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()  # from the footer
        files[path.name] = {"sha256": _sha256(path), "rows": rows}
    header = {
        "files": files,
        "entities": sorted({*staged.frames, *staged.files}),
        "deletions": sorted(staged.deletions),
        "full_listing": sorted(staged.full_listing),
        "source_counts": staged.source_counts,
        "watermarks": staged.watermarks,
        "as_of": staged.as_of.isoformat() if staged.as_of else None,
    }
    tmp = directory / "staged.json.part"
    tmp.write_text(json.dumps(header, ensure_ascii=False, indent=1))
    tmp.replace(directory / "staged.json")
    return directory


def _frame_files(header: dict, entity: str) -> list[str]:
    """The names of ``entity``'s frame files in staged.json, in row order: one
    ``frame.<entity>.parquet``, or parts ``frame.<entity>.<part>.parquet`` (the save side
    decides how many; their order in the header is the row order)."""
    return [
        name
        for name in header["files"]
        if name == f"frame.{entity}.parquet"
        or (name.startswith(f"frame.{entity}.") and name.endswith(".parquet"))
    ]


def open_verified(directory: Path, county: object = "") -> Staged:
    """A staged sync whose frames stay on disk: every file is checked against the sha256 and
    row count staged.json recorded (the row count from the Parquet footer, no data read),
    then read lazily through ``Staged.scan`` and ``Staged.parts`` (DuckDB ``read_parquet``).
    Deletion feeds (keys and times only) are read into memory as by ``load``."""
    header = json.loads((directory / "staged.json").read_text())
    files = header.get("files")
    if files is None:
        raise SourceError(
            county, directory / "staged.json", "staged files carry no checksums; stage again"
        )
    verified: dict[str, list[Path]] = {}
    heights: dict[str, int] = {}
    for entity in header["entities"]:
        paths = []
        for name in _frame_files(header, entity):
            path = directory / name
            _verify(path, files[name], county)
            rows = pl.scan_parquet(path).select(pl.len()).collect().item()  # the footer
            if rows != files[name]["rows"]:
                raise SourceError(
                    county,
                    path,
                    f"staged file has {rows} rows, staged.json says {files[name]['rows']}",
                )
            paths.append(path)
        if not paths:
            raise SourceError(county, directory / "staged.json", f"no frame file for {entity}")
        verified[entity] = paths
        heights[entity] = sum(files[p.name]["rows"] for p in paths)
    eager = load(directory, county, entities=())
    eager.parts, eager.heights = verified, heights
    return eager


def _verify(path: Path, expected: dict, county: object) -> None:
    try:
        digest = _sha256(path)
    except OSError as exc:
        raise SourceError(county, path, f"staged file unreadable: {exc}") from None
    if digest != expected["sha256"]:
        raise SourceError(
            county,
            path,
            f"staged file changed since it was written: sha256 {digest[:12]}… does not "
            f"match staged.json's {expected['sha256'][:12]}…; refused (stage it again "
            "from the landed pages)",
        )


def load(directory: Path, county: object = "", entities: object = None) -> Staged:
    """Read a staged sync, verifying every file against the sha256 and row count its header
    recorded: a truncated, shortened or swapped file raises ``SourceError`` naming it."""
    header = json.loads((directory / "staged.json").read_text())
    files = header.get("files")
    if files is None:
        raise SourceError(
            county, directory / "staged.json", "staged files carry no checksums; stage again"
        )

    def read(name: str) -> pl.DataFrame:
        path = directory / name
        expected = files.get(name)
        if expected is None:
            raise SourceError(county, path, "not listed in staged.json")
        _verify(path, expected, county)
        df = pl.read_parquet(path)
        if df.height != expected["rows"]:
            raise SourceError(
                county,
                path,
                f"staged file has {df.height} rows, staged.json says {expected['rows']}",
            )
        return df

    return Staged(
        frames={
            e: read(f"frame.{e}.parquet")
            for e in (header["entities"] if entities is None else entities)
        },
        deletions={e: read(f"deletions.{e}.parquet") for e in header["deletions"]},
        full_listing=set(header["full_listing"]),
        source_counts=header["source_counts"],
        watermarks=header["watermarks"],
        as_of=date.fromisoformat(header["as_of"]) if header["as_of"] else None,
    )
