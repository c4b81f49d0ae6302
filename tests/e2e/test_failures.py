"""Bad input loses nothing and names the problem (DESIGN, "What good looks like" and decision 3):
a malformed page or file fails that county's sync with a message naming the county, the URL or
file and the problem, and leaves the warehouse exactly as it was; transient faults are retried
away; one failing county does not stop the others; a county whose reject rate passes its
threshold is refused, not merged. Every test drives real Dagster runs against the simulator."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
import requests

from base import paths
from pipelines.landing import read_manifest
from seeds.registry import counties, county
from tests.conftest import TEST_SCALE
from tests.e2e.helpers import (
    content_digest,
    failure_messages,
    landing_syncs,
    live,
    run_failure_sensor,
    sync_city,
    sync_county,
    truth,
    warehouse_digest,
)

pytestmark = pytest.mark.e2e
LUONAN, SHANGNAN = county("luonan"), county("shangnan")
ZHASHUI, DANFENG = county("zhashui"), county("danfeng")


def _assert_names_county_and_hides_secrets(message: str, simulator, c) -> None:
    assert c.name in message and c.code in message, message
    creds = simulator.credentials(c.slug)
    for secret in (creds["key"], creds["secret"]):
        assert secret not in message
    assert "Bearer" not in message and "token=" not in message.lower()


# --- persistent faults: the sync fails, says why, and changes nothing ------------------------

PERSISTENT = {
    # fault kind -> what the message must say about the page
    "html200": "HTML page instead of JSON",
    "truncate": "truncated JSON",
    "rename_field": "layout changed",
}


@pytest.mark.parametrize("kind", sorted(PERSISTENT))
def test_persistent_fault_fails_the_sync_and_leaves_the_warehouse_as_it_was(
    simulator, hub_home, fast_retries, kind
):
    instance = dg.DagsterInstance.ephemeral()
    assert sync_county(LUONAN, "full", instance).success
    before = warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page"))
    landed_before = landing_syncs(LUONAN)

    # Every request for members fails, however often the client retries; the regions and
    # households listed before them arrive intact and must be kept on disk.
    simulator.arm_fault(LUONAN.code, kind, count=1000, entity="person")
    result = sync_county(LUONAN, "full", instance, raise_on_error=False)

    assert not result.success
    messages = failure_messages(result)
    assert set(messages) == {"luonan__landing"}, messages
    message = messages["luonan__landing"]
    _assert_names_county_and_hides_secrets(message, simulator, LUONAN)
    assert f"{simulator.url}/luonan/api/v2/members" in message, message
    assert PERSISTENT[kind] in message, message

    assert warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page")) == before

    # Nothing lost: the failed sync's pages are on disk, listed in its manifest, intact.
    (failed_sync,) = landing_syncs(LUONAN) - landed_before
    manifest = read_manifest(hub_home / "landing" / "luonan" / failed_sync / "manifest.json")
    entities = {p.entity for p in manifest.pages}
    assert {"region", "household"} <= entities, entities
    for page in manifest.pages:
        page.body()  # raises if the stored bytes do not match the manifest's sha256
    # A page whose layout changed arrived whole: it is landed for whoever investigates.
    assert ("person" in entities) == (kind == "rename_field")


# --- transient faults: retried away, the result equals a clean sync --------------------------

TRANSIENT = (
    "http500",
    "html502",
    "rate_limit",
    "busy",
    "maintenance",
    "expire_token",
    "drop_connection",
    "slow",
)
# Where each kind strikes: one label each on the API platforms. The workbook drop has two labels,
# so faults share them; a label's faults are met in arming order by one request and its retries,
# and the kinds that let the request through (slow, expire_token) come last on their label.
TARGETS = {
    "luonan": ("region", "household", "person", "measure", "loan", "project", "cadre", "stats"),
    "shangnan": (
        "region",
        "household",
        "person",
        "measure",
        "loan",
        "project",
        "cadre",
        "household_cadre",
    ),
    "zhashui": ("index", "file", "index", "file", "index", "index", "file", "file"),
}
# zhashui: index <- http500, rate_limit, maintenance, expire_token (a no-op on basic auth);
#          file  <- html502, busy, drop_connection, slow


@pytest.mark.parametrize("slug", sorted(TARGETS))
def test_transient_faults_are_retried_and_the_result_equals_a_clean_sync(
    simulator, hub_home, fast_retries, monkeypatch, slug
):
    c = county(slug)
    assert sync_county(c, "full").success
    clean = content_digest(c)

    monkeypatch.setenv("HUB_HOME", str(hub_home.parent / "faulty"))  # an empty warehouse
    for kind, label in zip(TRANSIENT, TARGETS[slug], strict=True):
        more = {"seconds": 0.3} if kind == "slow" else {}
        simulator.arm_fault(c.code, kind, count=1, entity=label, **more)
    result = sync_county(c, "full", raise_on_error=False)

    assert result.success, failure_messages(result)
    assert simulator.sim.faults.armed() == [], "a fault was never met: the test proves nothing"
    assert content_digest(c) == clean


# --- broken workbook uploads -----------------------------------------------------------------

BROKEN = {
    # (county, variant) -> what the message must say about the file
    ("zhashui", "truncated"): "not a readable .xlsx workbook",
    ("zhashui", "not_workbook"): "not a readable .xlsx workbook: an HTML page",
    ("zhashui", "wrong_sheet"): "no sheet '贫困人口明细'",
    ("danfeng", "truncated"): "the CSV ends mid-line (truncated upload)",
    ("danfeng", "not_workbook"): "not a CSV register: an HTML page",
    ("danfeng", "wrong_sheet"): "no header row containing '户编号'",
}


@pytest.mark.parametrize(("slug", "variant"), sorted(BROKEN))
def test_broken_upload_fails_naming_the_file_and_changes_nothing(
    simulator, hub_home, fast_retries, slug, variant
):
    c = county(slug)
    instance = dg.DagsterInstance.ephemeral()
    assert sync_county(c, "full", instance).success
    before = warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page"))

    simulator.arm_fault(c.code, "broken_upload", variant=variant)
    # The clerk uploads a new export (through the simulator's HTTP control API).
    made = requests.post(f"{simulator.url}/_sim/export?county={c.code}", timeout=30)
    made.raise_for_status()
    (export,) = made.json()["exports"]
    result = sync_county(c, "incremental", instance, raise_on_error=False)

    assert not result.success
    messages = failure_messages(result)
    assert set(messages) == {f"{slug}__landing"}, messages
    message = messages[f"{slug}__landing"]
    _assert_names_county_and_hides_secrets(message, simulator, c)
    assert export["name"] in message, message
    assert BROKEN[slug, variant] in message, message
    assert warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page")) == before


# --- one county failing does not stop the others ---------------------------------------------


def test_a_failing_county_does_not_stop_the_others_and_shows_in_sync_status(
    simulator, hub_home, fast_retries
):
    from pipelines.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    simulator.arm_fault(LUONAN.code, "html200", count=1000)
    result = defs.resolve_job_def("sync_all_counties").execute_in_process(
        instance=instance, raise_on_error=False
    )

    assert not result.success
    assert set(failure_messages(result)) == {"luonan__landing"}
    materialized = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    for c in counties():
        if c is LUONAN:
            assert not any(k[0] == "luonan" for k in materialized)
        else:
            assert (c.slug, "household") in materialized, c.slug

    # The run-failure sensor queues the failure; the marts step (a warehouse step) records it.
    run_failure_sensor(instance, result)
    assert sync_city(instance).success

    with live() as con:
        status = con.sql("SELECT * FROM mart.sync_status").pl()
    failed = status.filter(pl.col("county_code") == LUONAN.code).row(0, named=True)
    assert failed["last_success_at"] is None and failed["latest_status"] is None
    assert failed["last_failure_at"] is not None
    assert "洛南县" in failed["last_failure_error"]
    assert "HTML page instead of JSON" in failed["last_failure_error"]
    others = status.filter(pl.col("county_code") != LUONAN.code)
    assert others["last_success_at"].null_count() == 0
    assert set(others["latest_status"]) == {"succeeded"}
    assert others["last_failure_at"].null_count() == others.height


# --- reject threshold ------------------------------------------------------------------------


def test_a_county_over_its_reject_threshold_is_refused_and_keeps_its_data(
    simulator, hub_home, monkeypatch
):
    from simulator import embedded

    instance = dg.DagsterInstance.ephemeral()
    assert sync_county(LUONAN, "full", instance).success
    before = warehouse_digest()

    # The same county, now sending three defective records in ten.
    dirty = embedded.start_in_thread(seed=7, scale=TEST_SCALE, defect_rate=0.3)
    try:
        for key, value in embedded.env_for(dirty.url, [LUONAN.slug]).items():
            monkeypatch.setenv(key, value)
        result = sync_county(LUONAN, "full", instance, raise_on_error=False)
        dirty_truth = truth(dirty, LUONAN)
    finally:
        dirty.stop()

    assert not result.success
    message = failure_messages(result)["luonan_merge"]
    assert "RejectThresholdExceeded" in message
    assert "洛南县" in message and "nothing was merged" in message
    assert "above the county's threshold of 5.0%" in message
    rejects = dirty_truth.filter(pl.col("level") == "reject")
    top_rule = rejects.group_by("rule").len().sort("len", descending=True)["rule"][0]
    assert top_rule in message.split("Top reasons:", 1)[1], message

    assert warehouse_digest() == before  # core and watermarks exactly as they were
    with live() as con:
        refused = con.execute(
            "SELECT sync_run_id, entity, status, error, rejected FROM ops.sync_run "
            "WHERE county_code = ? AND status <> 'succeeded'",
            [LUONAN.code],
        ).pl()
        assert set(refused["status"]) == {"refused"}
        assert refused["sync_run_id"].n_unique() == 1
        assert refused["entity"].n_unique() == refused.height >= 7
        assert refused["error"].str.contains("reject rate").all()
        run_id = refused["sync_run_id"][0]
        quarantined = set(
            con.execute(
                "SELECT DISTINCT entity, source_key, rule FROM ops.reject WHERE sync_run_id = ?",
                [run_id],
            ).fetchall()
        )
    expected = {(r["entity"], r["source_key"], r["rule"]) for r in rejects.iter_rows(named=True)}
    assert quarantined == expected
    assert refused["rejected"].sum() == len({(e, k) for e, k, _ in expected})

    # The run report says so: refused, with this sync's counts and the reason in one line.
    from pipelines import report

    (outcome,) = report.from_dagster_run(instance, result.run_id, [LUONAN])
    assert outcome.status == "refused" and report.exit_code([outcome]) == 1
    assert outcome.counts["rejected"] == refused["rejected"].sum() > 0
    assert outcome.counts["fetched"] >= outcome.counts["rejected"]
    assert "nothing was merged" in outcome.cause and "\n" not in outcome.cause
    assert not outcome.cause.startswith("base.errors")
    csv_file = paths.hub_home() / "rejects" / "luonan" / f"luonan-rejects-{run_id}.csv"
    assert csv_file.read_bytes().startswith(b"\xef\xbb\xbf")
