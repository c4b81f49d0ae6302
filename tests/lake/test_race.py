"""Cross-county identity under a race on the lake: two counties claim the same household_no and
the same ID number and commit at the same moment, from two processes released by one barrier.
The lake must end exactly as the serial merge in the same commit order: one owner of the
household, the other's claim rejected and recorded once in ops.conflict, one ID-number conflict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import warehouse
from base.paths import REPO

pytestmark = pytest.mark.lake

SHARED_HOUSEHOLD = "6110211010019999"  # claimed by both counties
SHARED_ID = "611021197005011234"  # carried by one person in each county

_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import warehouse
    from tests.lake.test_race import sync_of
    from tests.unit.test_warehouse_fixtures import merge

    barrier, slug, parties = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    county, kw = sync_of(slug)
    with warehouse.connect() as con:  # attached and migrated: only the merge is left
        (barrier / slug).touch()
        while len(list(barrier.iterdir())) < parties:
            time.sleep(0.001)
        merge(con, county, f"race-{slug}", **kw)
    """
)


def sync_of(slug: str):
    """What each racer merges: the shared household, a household of its own whose member
    carries the shared ID number."""
    from tests.unit.test_warehouse_fixtures import LUONAN, SHANGNAN, household, person

    county, own = {"luonan": (LUONAN, "6110211010010001"), "shangnan": (SHANGNAN, "6110231010010001")}[slug]  # fmt: skip
    return county, {
        "households": [household(SHARED_HOUSEHOLD), household(own)],
        "persons": [
            person(SHARED_HOUSEHOLD + "01", "61102119900101456X"),
            person(own + "01", SHARED_ID),
        ],
    }


def _lake_env(monkeypatch, dsn: str, data: Path) -> None:
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", dsn)
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", str(data))


def identity_state(con) -> dict[str, list]:
    """What cross-county identity decides, without the wall-clock columns."""
    return {
        "households": con.execute(
            "SELECT household_no, county_code FROM core.household ORDER BY ALL"
        ).fetchall(),
        "persons": con.execute(
            "SELECT person_no, county_code, person_key FROM core.person ORDER BY ALL"
        ).fetchall(),
        "conflicts": con.execute(
            "SELECT conflict_id, kind, key, county_code_a, source_key_a, county_code_b, "
            "source_key_b, resolution, winner, resolved_at IS NULL, sync_run_id "
            "FROM ops.conflict ORDER BY ALL"
        ).fetchall(),
        "rejects": con.execute(
            "SELECT sync_run_id, county_code, entity, source_key, rule FROM ops.reject ORDER BY ALL"
        ).fetchall(),
    }


def test_two_counties_claiming_one_household_at_once_end_as_the_serial_merge(
    postgres, hub_home, tmp_path, monkeypatch
):
    _lake_env(monkeypatch, postgres.database("race_parallel"), tmp_path / "parallel")
    with warehouse.connect():
        pass  # create and migrate the lake before the racers attach it
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(barrier), slug, "2"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for slug in ("luonan", "shangnan")
    ]
    for racer in racers:
        _, err = racer.communicate(timeout=180)
        assert racer.returncode == 0, err[-3000:]
    with warehouse.connect(read_only=True) as con:
        raced = identity_state(con)
        order = [
            r[0].removeprefix("race-")
            for r in con.execute(
                "SELECT sync_run_id FROM ops.sync_run GROUP BY 1 ORDER BY max(finished_at)"
            ).fetchall()
        ]
    # One owner, the other's claim recorded once; one ID-number conflict across the counties.
    owners = [c for h, c in raced["households"] if h == SHARED_HOUSEHOLD]
    assert len(owners) == 1
    claims = [c for c in raced["conflicts"] if c[1] == "household_no"]
    assert len(claims) == 1 and claims[0][3] == owners[0] and claims[0][8] == "a"
    assert len([c for c in raced["conflicts"] if c[1] == "id_number"]) == 1

    # The serial merge in the order the race committed, into a fresh lake.
    _lake_env(monkeypatch, postgres.database("race_serial"), tmp_path / "serial")
    from tests.unit.test_warehouse_fixtures import merge

    with warehouse.connect() as con:
        for slug in order:
            county, kw = sync_of(slug)
            merge(con, county, f"race-{slug}", **kw)
        assert identity_state(con) == raced


def test_without_the_write_lock_the_same_race_gives_the_household_two_owners(
    lake_dsn, hub_home, tmp_path, monkeypatch
):
    """The control: with the lake's write lock switched off and both transactions held at their
    COMMIT until both got there, DuckLake commits both (they only insert), and the household
    ends with two owners and no conflict. The lock is what makes the race above exact."""
    import threading
    from contextlib import nullcontext

    from tests.unit.test_warehouse_fixtures import merge
    from warehouse import keys
    from warehouse.lake import locks

    _lake_env(monkeypatch, lake_dsn, tmp_path / "data")
    with warehouse.connect():
        pass
    monkeypatch.setattr(locks, "writer", lambda purpose="write": nullcontext())
    both_at_commit = threading.Barrier(2, timeout=120)
    check_keys = keys.check_keys

    def at_commit(con, scope=None):
        check_keys(con, scope)
        both_at_commit.wait()

    monkeypatch.setattr(keys, "check_keys", at_commit)
    errors = []

    def racer(slug):
        try:
            county, kw = sync_of(slug)
            with warehouse.connect() as con:
                merge(con, county, f"race-{slug}", **kw)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=racer, args=(s,)) for s in ("luonan", "shangnan")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    with warehouse.connect(read_only=True) as con:
        state = identity_state(con)
    owners = sorted(c for h, c in state["households"] if h == SHARED_HOUSEHOLD)
    assert owners == ["611021", "611023"]
    assert [c for c in state["conflicts"] if c[1] == "household_no"] == []
