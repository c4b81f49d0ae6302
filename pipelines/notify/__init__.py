"""Notifications to the counties and the city: failed, refused, stale and reject-rate spikes.

Poverty data is fixed only at its source, so the hub tells the county's clerks at once, in
Chinese, in the channels they live in: WeCom (企业微信) and DingTalk (钉钉) group robots and
e-mail. ``docs/engineering/runbook.md`` (Notifications) lists the settings.

- :func:`on_failure` decorates ``sync.land`` and ``sync.merge``: whatever started the sync (a
  schedule, a sensor, ``make demo``, ``hub sync``), its failure is notified from the step that
  failed. The run-failure sensor calls :func:`run_failed` as a backstop for failures no step
  reported (a killed process); the ledger makes the two one notification.
- :func:`reject_spike` is asked by the merge after it committed (the reject rate more than
  doubled against the county's last 7 days); the merge sends it once it released the warehouse.
- :func:`stale_counties` is called by a sensor: a county past its freshness window.

A notification never fails a sync: every error here is logged (without the webhook's secret)
and swallowed.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pipelines.notify.channels import channels_for, deliver
from pipelines.notify.ledger import Ledger
from pipelines.notify.messages import Notice, failure_notice, spike_notice, stale_notice

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: A spike needs this many rejected records: two rejects after one is not news.
SPIKE_MIN_REJECTED = 10
SPIKE_DAYS = 7


def send(notice: Notice, now: datetime | None = None) -> bool:
    """Deliver ``notice`` once (its ``key``), unless the same problem (its ``signature``) was
    notified within the repeat window. Returns whether it was sent. Never raises."""
    try:
        ledger = Ledger()
        decision = ledger.admit(notice.key, notice.signature, now or datetime.now(UTC))
        if not decision.send:
            log.info("notification %s not sent: %s", notice.signature, decision.why)
            return False
        notice.suppressed_before = decision.suppressed
        targets = channels_for(notice.county)
        if not targets:
            log.info("no notification channel configured for %s", notice.county_name)
            return False
        delivered = deliver(notice, targets)
        return delivered > 0
    except Exception as exc:  # a notification must never fail a sync
        log.warning("notification %s failed: %s", notice.signature, type(exc).__name__)
        return False


def current_run_id() -> str | None:
    """The Dagster run this code runs in, if any (``hub sync`` and tests run without one)."""
    import sys

    if "dagster" not in sys.modules:
        return None
    import dagster as dg

    try:
        return dg.OpExecutionContext.get().run_id
    except Exception:  # no op context in scope
        return None


def on_failure(step: str) -> Callable[[F], F]:
    """Decorator for ``sync.land`` / ``sync.merge`` (first argument: the County): an exception
    is notified (failed, or refused for the reject threshold and the safety stop) and
    re-raised unchanged."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(county, *args, **kwargs):
            try:
                return fn(county, *args, **kwargs)
            except Exception as exc:
                run_id = current_run_id()
                run_key = run_id or f"local-{uuid.uuid4().hex[:12]}"
                try:
                    send(failure_notice(county, exc, step=step, run_id=run_id, run_key=run_key))
                except Exception as notify_exc:
                    log.warning("notification failed: %s", type(notify_exc).__name__)
                raise

        return inner  # type: ignore[return-value]

    return wrap


def run_failed(county_slug: str | None, run_id: str, error: str) -> bool:
    """Backstop from the run-failure sensor: the run's failure, unless its step already told."""
    from seeds.registry import county as find

    try:
        county = find(county_slug) if county_slug else None
    except KeyError:
        county = None
    return send(failure_notice(county, error, step=None, run_id=run_id, run_key=run_id))


def reject_spike(con, county, sync_run_id: str, rejected: int, total: int) -> Notice | None:
    """The notice to send when this sync's reject rate is more than double the county's average
    over its syncs of the last 7 days (succeeded or refused; this sync excluded), else None.
    Only reads: the merge sends it after releasing the warehouse. Never raises."""
    try:
        if not total or rejected < SPIKE_MIN_REJECTED:
            return None
        row = con.execute(
            """
            SELECT sum(rejected), sum(accepted) + sum(rejected), count(DISTINCT sync_run_id)
            FROM ops.sync_run
            WHERE county_code = $county AND status IN ('succeeded', 'refused')
              AND entity <> '*' AND sync_run_id <> $run AND finished_at >= $since
            """,
            {
                "county": county.code,
                "run": sync_run_id,
                "since": datetime.now(UTC) - timedelta(days=SPIKE_DAYS),
            },
        ).fetchone()
        before_rejected, before_total, syncs = (int(v or 0) for v in row)
        if not syncs or not before_total:
            return None
        rate, baseline = rejected / total, before_rejected / before_total
        if baseline <= 0 or rate <= 2 * baseline:
            return None
        return spike_notice(county, rate, baseline, syncs, sync_run_id, current_run_id())
    except Exception as exc:
        log.warning("reject-rate check for %s failed: %s", county.slug, type(exc).__name__)
        return None


def stale_counties(now: datetime | None = None) -> list[str]:
    """Notify every county whose last committed sync is older than its freshness window (the
    assets' fail window). Returns the slugs found stale. Reads only the state files."""
    import json

    import warehouse
    from pipelines.notify.messages import freshness_window
    from seeds.registry import counties

    now = now or datetime.now(UTC)
    stale = []
    for county in counties():
        try:
            state = json.loads(warehouse.state_path(county).read_text(encoding="utf-8"))
            last = datetime.fromisoformat(state["written_at"])
        except (OSError, ValueError, KeyError):
            continue  # never synced: nothing to be late against
        window = freshness_window(county)
        if now - last > window:
            stale.append(county.slug)
            send(stale_notice(county, last, window, now), now=now)
    return stale
