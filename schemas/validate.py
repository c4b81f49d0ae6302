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
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from schemas.column_docs import CORE_LINEAGE, column_schema, table_schema
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
    _empty_failures,
    _failures,
    _issues,
    _key_set,
    _rejected_rows,
    _union,
    _with_row,
)
from schemas.validate_chunks import (
    HOUSEHOLD_KEYED,
    accepted_keys,
    chunk_size,
    compact,
    conflict_candidates,
    cross_frame,
    empty_conflicts,
    household_partitions,
    households_of,
    partitioned_households,
    partitions,
    row_failures,
)
from schemas.validation_context import (
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


def validate_county(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame],
    context: ValidationContext,
    *,
    unchanged: Mapping[str, pl.Series] | None = None,
    chunk_rows: int | None = None,
    workdir: Path | None = None,
) -> dict[str, Validated]:
    """Validate one county's staged frames (``schemas.columns.frame_schema`` each).

    Returns a ``Validated`` for every entity in ``frames``. Only rows passing every reject rule
    are accepted; findings are evaluated on accepted rows; conflicts do not reject.

    Bounded memory and the row-hash diff (issue 13; how the rows are read:
    ``schemas.validate_chunks``):

    - ``frames`` may be lazy (``pl.scan_parquet`` of the staged files). The **per-row checks**
      then read the rows in chunks of ``chunk_rows`` (default ``validate_chunks.chunk_size()``),
      all columns, one chunk at a time.
    - ``unchanged`` (entity -> row positions ``_row``) names rows the merge's hash diff found
      identical to this county's live core row (same ``row_hash`` and source key, no parse
      error, source time not in the future; ``warehouse.staged_rows``): a row that passed the
      per-row checks when it was merged, with the same content, passes them again, so they
      are skipped for it.
    - The **cross-record rules** (head count and member facts per household, orphans and
      ``parent_rejected``, known villages and cadres, ``unknown_division``) and **every
      finding** run over the FULL staged set, unchanged rows included, per partition of
      households and reading only the columns they need: a household whose row did not change
      is still rejected when a changed member breaks its head count, and an unchanged row's
      findings are recorded in every sync exactly as before (once per sync, neither lost nor
      doubled).
    - ``workdir``: where the partitions' temporary files go, removed afterwards (the merge's
      DuckDB temp directory; ``validate_chunks.household_partitions``).
    - ``Validated.rejected_rows`` names the rejected row positions, so the merge reads the
      accepted rows from the staged files itself; with lazy frames ``accepted`` keeps only
      how many rows were accepted (a column of nulls, which holds no data: ``accepted_keys``).
    """
    ctx = context
    unknown = set(frames) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}")
    lazy = any(isinstance(f, pl.LazyFrame) for f in frames.values())
    skip = unchanged or {}
    chunk_rows = chunk_rows or chunk_size()
    fails = {e: row_failures(e, f, skip.get(e), ctx.now, chunk_rows) for e, f in frames.items()}

    # the registers not keyed by household, whole: regions → villages, cadres, projects
    registers = {e: cross_frame(e, f) for e, f in frames.items() if e not in HOUSEHOLD_KEYED}
    run = _Run(registers, {e: _with_row(df) for e, df in registers.items()}, ctx)
    run.fails = {e: fails[e] for e in registers}
    if "region" in run.dfs and ctx.known_villages is not None:
        run.add("region", _unknown_divisions(run.dfs["region"], ctx))
    batch_villages = _key_set(run.accepted_part("region"), "code") if "region" in run.dfs else None
    villages = _union(batch_villages, _key_set(ctx.existing_villages, "code"))
    known_cadres = _key_set(ctx.existing_cadres, "cadre_id")
    if "cadre" in run.dfs:
        known_cadres = _union(known_cadres, _key_set(run.accepted_part("cadre"), "cadre_id"))
    if "project" in run.dfs:
        orphan = _orphans(run.dfs["project"], "village_code", villages, "orphan_village", None)
        run.add("project", orphan)

    cadre_ids = _key_set(run.dfs.get("cadre"), "id_number")
    out, poor = _by_household(frames, fails, ctx, villages, known_cadres, cadre_ids, lazy, workdir)
    for entity, df in run.dfs.items():
        accepted = run.accepted_part(entity)
        found = _cadre_findings(accepted, ctx, poor) if entity == "cadre" else []
        out[entity] = Validated(
            accepted=accepted_keys(entity, accepted, lazy),
            rejects=_issues(entity, df, run.fails[entity]),
            findings=_issues(entity, df, pl.concat(found) if found else _empty_failures()),
            conflicts=empty_conflicts(),
            rejected_rows=_rejected_rows(run.fails[entity]).sort(),
        )
    if "person" in frames:
        out["person"].conflicts = _conflicts(conflict_candidates(frames["person"]))
    if lazy:  # what the merge keeps while DuckDB works: only its own strings
        for v in out.values():
            v.accepted, v.rejects, v.findings = map(compact, (v.accepted, v.rejects, v.findings))
    return {e: out[e] for e in frames}


def _by_household(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame],
    fails: dict[str, pl.DataFrame],
    ctx: ValidationContext,
    villages: pl.Series | None,
    known_cadres: pl.Series | None,
    cadre_ids: pl.Series | None,
    lazy: bool,
    workdir: Path | None,
) -> tuple[dict[str, Validated], pl.Series | None]:
    """The household-keyed entities, one partition of households at a time: each partition
    holds every staged row of its households (``validate_chunks.household_partitions``). Also
    returns the accepted persons' ID numbers that a cadre of the batch carries (None when the
    batch has no persons), for ``cadre_registered_poor``."""
    present = [e for e in HOUSEHOLD_KEYED if e in frames]
    parts = partitions(dict(frames))
    if lazy and ctx.existing_members is not None and "person" in frames:
        # a member re-sent under another household (in another partition) is not counted in
        # its old household: drop every re-sent person from the warehouse's members up front
        # (inline: the county's person numbers are not held through the partitions)
        resent = frames["person"].lazy().select("person_no")
        members = ctx.existing_members.lazy().join(resent, on="person_no", how="anti")
        ctx = replace(ctx, existing_members=members.collect())
    pieces: dict[str, list[Validated]] = {e: [] for e in present}
    poor: list[pl.Series] = []
    households = partitioned_households(ctx.existing_households, parts)
    with household_partitions({e: frames[e] for e in present}, parts, workdir) as partition:
        for part in range(parts):
            dfs = {e: partition(e, part) for e in present}
            rows = {e: df["_row"].implode() for e, df in dfs.items()}
            # the orphan checks of a partition's children need only its own households
            local = replace(ctx, existing_households=households_of(households, part, parts))
            run = _Run(
                dfs, dfs, local, {e: fails[e].filter(pl.col("_row").is_in(rows[e])) for e in dfs}
            )
            facts = _household_rejects(run, villages)
            _child_rejects(run, known_cadres)
            accepted = {e: run.accepted_part(e) for e in dfs}
            findings = _findings(run, accepted, facts)
            for entity, df in dfs.items():
                found = pl.concat(findings[entity]) if findings[entity] else _empty_failures()
                pieces[entity].append(
                    Validated(
                        accepted=accepted_keys(entity, accepted[entity], lazy),
                        rejects=compact(_issues(entity, df, run.fails[entity])),
                        findings=compact(_issues(entity, df, found)),
                        conflicts=empty_conflicts(),
                        rejected_rows=_rejected_rows(run.fails[entity]),
                    )
                )
            if "person" in accepted and cadre_ids is not None:
                ids = _key_set(accepted["person"], "id_number")
                poor.append(ids.filter(ids.is_in(cadre_ids.implode())))
    batch_poor = None
    if "person" in frames:
        batch_poor = pl.concat(poor) if poor else pl.Series("id_number", [], pl.String)
    return {e: _joined(p) for e, p in pieces.items()}, batch_poor


def _joined(pieces: list[Validated]) -> Validated:
    joined = Validated(
        accepted=pl.concat([p.accepted for p in pieces]),
        rejects=pl.concat([p.rejects for p in pieces]),
        findings=pl.concat([p.findings for p in pieces]),
        conflicts=empty_conflicts(),
        rejected_rows=pl.concat([p.rejected_rows for p in pieces]).sort(),
    )
    return joined


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


def _child_rejects(run: _Run, known_cadres: pl.Series | None) -> None:
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
    """The finding rules of households and persons, on accepted rows only."""
    dfs, ctx = run.dfs, run.ctx
    findings: dict[str, list[pl.DataFrame]] = {e: [] for e in dfs}
    if "household" in dfs:
        findings["household"] = _household_findings(accepted["household"], facts, ctx)
    if "household" in dfs and ctx.known_villages is not None:
        findings["household"] += _unknown_villages(accepted["household"], ctx)
    if "person" in dfs:
        findings["person"] = _person_findings(accepted["person"], ctx)
    return findings


def _cadre_findings(
    accepted: pl.DataFrame, ctx: ValidationContext, batch_poor: pl.Series | None
) -> list[pl.DataFrame]:
    """cadre_registered_poor: the cadre's ID number is a registered poor person's, in the
    warehouse or accepted in this batch."""
    poor = _union(_key_set(ctx.poor_id_numbers, "id_number"), batch_poor)
    if poor is None:
        return []
    id_ = pl.col("id_number")
    return [_failures(accepted, id_.is_in(poor.implode()), "cadre_registered_poor", "id_number")]
