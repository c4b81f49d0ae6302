"""Validate one county sync: split each canonical frame into accepted rows, rejects and findings.

Contract 4 of ``docs/engineering/architecture.md``. The steps:

1. **Column and within-row rules** run as the pandera models of ``schemas/<entity>.py``
   (``validate(lazy=True)``); their ``failure_cases`` (row ``index``, column, check) are mapped to
   rule names (a custom check is named after its rule, ``not_nullable`` is ``missing_value``,
   a built-in check takes the field's ``metadata["rule"]``).
2. The frame's ``parse_errors`` become rejects under their own rule (``bad_date``, …). A column
   that failed to parse is null, so the model's rules on that column are dropped for that row:
   one defect, one rule.
3. **Cross-entity reject rules** (polars, below), parents before children: regions → households
   (``orphan_village``, ``head_count`` over every member row delivered) → members, measures,
   loans, aid relations (``parent_rejected`` when the household was rejected in this sync, else
   ``orphan_household``); cadres → aid relations (``orphan_cadre``); regions → projects.
4. A row failing any reject rule is not accepted. **Findings** are evaluated on accepted rows
   only; **conflicts** (one ID number on two person records) are recorded and do not reject.

Everything is vectorised: failures are small frames keyed by the row position ``_row``.

The steps live in modules of their own: ``schemas.validation_context`` (what validation is
given and returns), ``schemas.failures`` (the models' rules, failures as ops rows),
``schemas.cross_rules`` (cross-entity rules, findings, conflicts) and ``schemas.column_docs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from schemas.column_docs import CORE_LINEAGE, column_schema, table_schema
from schemas.columns import STAGING
from schemas.cross_rules import (
    _conflicts,
    _household_findings,
    _household_member_facts,
    _members,
    _orphans,
    _parent_rejected,
    _person_findings,
    _unknown_divisions,
    _unknown_villages,
)
from schemas.entities import CHILD_ENTITIES
from schemas.failures import (
    MODELS,
    _column_failures,
    _empty_failures,
    _failures,
    _issues,
    _key_set,
    _rejected_rows,
    _union,
    _with_row,
)
from schemas.sanity import sanity_failures
from schemas.validation_context import (
    CONFLICT_SCHEMA,
    LOCAL_TZ,
    Validated,
    ValidationContext,
    load_poverty_lines,
)

CHILDREN = CHILD_ENTITIES

__all__ = [
    "CHILDREN",
    "CORE_LINEAGE",
    "LOCAL_TZ",
    "MODELS",
    "Validated",
    "ValidationContext",
    "column_schema",
    "load_poverty_lines",
    "table_schema",
    "validate_county",
]


#: Rows per chunk of the per-row checks (pandera models, parse errors, sanity): the models run
#: on at most this many rows at once, so their copies and failure frames stay bounded.
CHUNK_ROWS = 50_000

#: The columns the cross-record rules and the findings read (besides ``STAGING``). A lazily
#: given frame is read with only these over the full staged set; None: every column (regions
#: are a few hundred rows).
CROSS_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "region": None,
    "household": (
        "household_no",
        "town_code",
        "village_code",
        "poverty_attribute",
        "poverty_status",
        "main_cause",
        "other_causes",
        "exit_year",
        "income_per_capita",
        "member_count",
        "housing_safe",
        "water_safe",
    ),
    "person": (
        "person_no",
        "household_no",
        "id_number",
        "sex",
        "birth_date",
        "relation_to_head",
        "school_status",
        "health",
        "labor_skill",
    ),
    "measure": ("measure_id", "household_no"),
    "loan": ("loan_id", "household_no"),
    "project": ("project_id", "village_code"),
    "cadre": ("cadre_id", "id_number"),
    "household_cadre": ("household_no", "cadre_id"),
}


def validate_county(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame],
    context: ValidationContext,
    *,
    unchanged: Mapping[str, pl.Series] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Validated]:
    """Validate one county's staged frames (``schemas.columns.frame_schema`` each).

    Returns a ``Validated`` for every entity in ``frames``. Only rows passing every reject rule
    are accepted; findings are evaluated on accepted rows; conflicts do not reject.

    Bounded memory and the row-hash diff (issue 13):

    - ``frames`` may be lazy (``pl.scan_parquet`` of the staged files). The **per-row checks**
      (pandera model, parse errors, text sanity, times in the future) then read the rows in
      chunks of ``chunk_rows``, all columns, one chunk at a time.
    - ``unchanged`` (entity -> row positions ``_row``) names rows the merge's hash diff found
      identical to this county's live core row (same ``row_hash`` and source key, no parse
      error, source time not in the future; ``warehouse.staged_rows``): a row that passed
      these checks when it was merged, with the same content, passes them again, so they are
      skipped for it. Chunks holding only such rows are never read.
    - The **cross-record rules** (head count and member facts per household, orphans and
      ``parent_rejected``, villages and cadres known, ``unknown_division``) and **every
      finding** run over the FULL staged set, unchanged rows included, reading only the
      columns they need (``CROSS_COLUMNS``): a household whose rows did not change is still
      rejected when a changed member breaks its head count, and an unchanged row's findings
      are recorded in every sync exactly as before (once per sync, neither lost nor doubled).
    - ``Validated.rejected_rows`` names the rejected row positions, so the merge reads the
      accepted rows from the staged files itself; with lazy frames ``accepted`` carries only
      the cross-record columns.
    """
    ctx = context
    unknown = set(frames) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}")
    skip = unchanged or {}
    cross = {e: _cross_frame(e, f) for e, f in frames.items()}
    run = _Run(cross, {e: _with_row(df) for e, df in cross.items()}, ctx)
    run.fails = {
        e: _row_failures(e, f, skip.get(e), ctx.now, chunk_rows) for e, f in frames.items()
    }
    if "region" in run.dfs and ctx.known_villages is not None:
        run.add("region", _unknown_divisions(run.dfs["region"], ctx))

    # regions → villages known to this sync
    batch_villages = _key_set(run.accepted_part("region"), "code") if "region" in run.dfs else None
    villages = _union(batch_villages, _key_set(ctx.existing_villages, "code"))
    facts = _household_rejects(run, villages)
    _child_rejects(run)
    if "project" in run.dfs:
        orphan = _orphans(run.dfs["project"], "village_code", villages, "orphan_village", None)
        run.add("project", orphan)

    accepted = {e: run.accepted_part(e) for e in run.dfs}
    findings = _findings(run, accepted, facts)
    out: dict[str, Validated] = {}
    for entity, df in run.dfs.items():
        found = pl.concat(findings[entity]) if findings[entity] else _empty_failures()
        out[entity] = Validated(
            accepted=accepted[entity].drop("_row"),
            rejects=_issues(entity, df, run.fails[entity]),
            findings=_issues(entity, df, found),
            conflicts=_conflicts(df)
            if entity == "person"
            else pl.DataFrame(schema=CONFLICT_SCHEMA),
            rejected_rows=_rejected_rows(run.fails[entity]).sort(),
        )
    return out


def _cross_frame(entity: str, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """What the cross-record rules read of an entity: a frame given in memory as it is, a lazy
    one with only ``CROSS_COLUMNS`` (and the staging columns) over every staged row."""
    if isinstance(frame, pl.DataFrame):
        return frame
    columns = CROSS_COLUMNS.get(entity)
    if columns is None:
        return frame.collect()
    return frame.select(*columns, *STAGING).collect()


def _row_failures(
    entity: str,
    frame: pl.DataFrame | pl.LazyFrame,
    unchanged: pl.Series | None,
    now: datetime | None,
    chunk_rows: int,
) -> pl.DataFrame:
    """The per-row checks (model, parse errors, sanity) of every row not ``unchanged``, read
    ``chunk_rows`` at a time; failures keyed by the row's position in the whole frame."""
    lazy = frame.lazy()
    height = (
        frame.height if isinstance(frame, pl.DataFrame) else lazy.select(pl.len()).collect()[0, 0]
    )
    skipped = (
        unchanged.cast(pl.UInt32).unique().sort()
        if unchanged is not None
        else pl.Series("_row", [], pl.UInt32)
    )
    parts = [_empty_failures()]
    for start in range(0, height, chunk_rows):
        end = min(start + chunk_rows, height)
        rows = pl.Series("_row", range(start, end), pl.UInt32)
        skip_here = skipped.filter((skipped >= start) & (skipped < end))
        if skip_here.len() == end - start:
            continue  # every row here is unchanged: the chunk is not even read
        chunk = lazy.slice(start, end - start).collect()
        if skip_here.len():
            keep = ~rows.is_in(skip_here.implode())
            chunk, rows = chunk.filter(keep), rows.filter(keep)
        local = pl.concat(
            [_column_failures(entity, chunk), sanity_failures(entity, _with_row(chunk), now)]
        )
        parts.append(local.with_columns(rows.gather(local["_row"]).alias("_row")))
    return pl.concat(parts)


@dataclass
class _Run:
    """One validation: the frames as given, with ``_row``, and the failures found so far."""

    frames: dict[str, pl.DataFrame]
    dfs: dict[str, pl.DataFrame]
    ctx: ValidationContext
    fails: dict[str, pl.DataFrame] = field(default_factory=dict)

    def add(self, entity: str, *failures: pl.DataFrame) -> None:
        self.fails[entity] = pl.concat([self.fails[entity], *failures])

    def accepted_part(self, entity: str) -> pl.DataFrame:
        rejected = _rejected_rows(self.fails[entity]).implode()
        return self.dfs[entity].filter(~pl.col("_row").is_in(rejected))


def _household_rejects(run: _Run, villages: pl.Series | None) -> pl.DataFrame | None:
    """Households: orphan_village, head_count. Returns the member facts per household (None
    when no member is known), which the household findings read too."""
    members = _members(run.frames, run.ctx)
    if "household" not in run.dfs:
        return None
    hh, facts = run.dfs["household"], None
    # with the division list, a village in no list is a finding (unknown_village), not a
    # reject: the household is real, its 户编号 or the list is what needs fixing
    extra = (
        [_orphans(hh, "village_code", villages, "orphan_village", None)]
        if run.ctx.known_villages is None
        else []
    )
    if members is not None:
        facts = _household_member_facts(hh, members, run.ctx.as_of)
        heads = hh.select("_row", "household_no").join(facts, on="household_no", how="left")
        extra.append(
            _failures(
                heads,
                pl.col("_heads") != 1,
                "head_count",
                "relation_to_head",
                value=pl.col("_heads"),
            )
        )
    run.add("household", *extra)
    return facts


def _child_rejects(run: _Run) -> None:
    """Members, measures, loans and aid relations: parent_rejected when their household was
    rejected in this sync, else orphan_household; aid relations also orphan_cadre."""
    dfs, ctx = run.dfs, run.ctx
    # which households this sync rejected, and why (for parent_rejected messages)
    rejected_households = pl.DataFrame(schema={"household_no": pl.String, "_rules": pl.String})
    known_households = _key_set(ctx.existing_households, "household_no")
    if "household" in dfs:
        hh_fails = run.fails["household"].join(
            dfs["household"].select("_row", "household_no"), on="_row"
        )
        rejected_households = (
            hh_fails.filter(pl.col("household_no").is_not_null())
            .group_by("household_no", maintain_order=True)
            .agg(pl.col("rule").unique(maintain_order=True).str.join(", ").alias("_rules"))
        )
        known_households = _union(
            known_households, _key_set(run.accepted_part("household"), "household_no")
        )
    known_cadres = _key_set(ctx.existing_cadres, "cadre_id")
    if "cadre" in dfs:
        known_cadres = _union(known_cadres, _key_set(run.accepted_part("cadre"), "cadre_id"))

    rejected_keys = rejected_households["household_no"]
    for entity in CHILDREN:
        if entity not in dfs:
            continue
        df = dfs[entity]
        extra = [
            _parent_rejected(df, rejected_households),
            _orphans(df, "household_no", known_households, "orphan_household", rejected_keys),
        ]
        if entity == "household_cadre":
            extra.append(_orphans(df, "cadre_id", known_cadres, "orphan_cadre", None))
        run.add(entity, *extra)


def _findings(
    run: _Run, accepted: dict[str, pl.DataFrame], facts: pl.DataFrame | None
) -> dict[str, list[pl.DataFrame]]:
    """The finding rules, on accepted rows only."""
    dfs, ctx = run.dfs, run.ctx
    findings: dict[str, list[pl.DataFrame]] = {e: [] for e in dfs}
    if "household" in dfs:
        findings["household"] = _household_findings(accepted["household"], facts, ctx)
    if "household" in dfs and ctx.known_villages is not None:
        findings["household"] += _unknown_villages(accepted["household"], ctx)
    if "person" in dfs:
        findings["person"] = _person_findings(accepted["person"], ctx)
    if "cadre" in dfs:
        poor = _union(
            _key_set(ctx.poor_id_numbers, "id_number"),
            _key_set(accepted.get("person"), "id_number"),
        )
        if poor is not None:
            id_ = pl.col("id_number")
            findings["cadre"] = [
                _failures(
                    accepted["cadre"],
                    id_.is_in(poor.implode()),
                    "cadre_registered_poor",
                    "id_number",
                )
            ]
    return findings
