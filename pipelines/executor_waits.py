"""How Dagster's executors wait: for the events of their step processes, and for a pool slot
another run holds (the ``duckdb_warehouse`` pool, limit 1).

**Step events.** The multiprocess executor takes one event at a time from each running step
process in turn, waiting up to ``child_process_executor.TICK`` (20 ms) on each one that has
none. A merge ends with a burst of ~30-40 events (its materialisations, check evaluations and
outputs), and the next merge is launched only once its success event is taken: with two
landings running beside it, the run worker took ~40 ms per event and launched the next merge
1.5 s after the previous had ended (bench/history.md, "The merge chain's gaps"). Now an empty
queue is not waited on while another step's events are flowing (:data:`BURST_SECONDS`), and
otherwise for :data:`STEP_EVENT_POLL_SECONDS`; an idle run worker wakes more often for it
(~1 % of a core).

**Pool slots.**
Dagster 1.13's executors check a blocked step's claim again after a back-off that grows from
1 s by 10 % a try up to 15 s (``instance_concurrency_context._calculate_timeout_interval``), and
between those checks they do not wait at all: the multiprocess executor's loop has nothing to
block on when no step of its run is executing, and the in-process executor's
``sleep_til_ready`` sleeps ``min(0, time to the next check)``, which is never more than 0. So
a ``sync_city`` queued behind another run's merge spun a core of this 2-core machine against
the merge it waited for, and started up to 15 s after the slot was free (``bench/pool_wait.py``;
bench/history.md, "The merge chain's gaps").

Two fixes, both about waiting only, never about who gets the slot (the pool's own queue and
priorities decide that, in the instance):

- the event log storage answers a blocked claim with the interval to check again
  (:data:`POOL_POLL_SECONDS`; ``ConcurrencyClaimStatus.sleep_interval``, which Dagster's
  executors honour instead of their back-off): ``pipelines/event_log.py``;
- :func:`apply` makes a pending claim that is not yet due wait a little before it answers
  "not yet" (:data:`PENDING_CLAIM_NAP`), so the executors' loops idle instead of spinning.

:func:`apply` is called by the code location (``pipelines/definitions.py``): the executors run
in the process that loaded it. Both patch Dagster's private modules; if they move, ``apply``
fails the code location's import loudly rather than silently losing the waits
(``tests/unit/test_orchestration_config.py`` asserts both).
"""

from __future__ import annotations

import functools
import queue
import time

#: Seconds between two checks of a blocked pool claim (Dagster: 1 s growing to 15 s). A check
#: is three small queries on the instance's index database.
POOL_POLL_SECONDS = 0.5

#: Longest wait of one "not yet" answer to a pending claim: the loop that asks also takes the
#: events of the run's running steps, so a short one (at most 40 asks a second: ~1-2 % of a core
#: while blocked, against 3 % at 10 ms and a spinning core without; bench/pool_wait.py).
PENDING_CLAIM_NAP = 0.025

#: Seconds the multiprocess executor waits on a step process with no event for it (Dagster: 0.02).
STEP_EVENT_POLL_SECONDS = 0.005

#: While a step process's events are flowing (one came this recently), the executor waits on
#: its queue only and looks at the others' without waiting: a merge's closing burst is taken as
#: fast as the merge writes it, and the loop still sleeps (on the flowing queue), never spins.
BURST_SECONDS = 0.05

_flowing: dict = {"queue": None, "at": 0.0}


def apply() -> None:
    """Both waits, in this process (the code location's: the executors run where it loaded)."""
    from dagster._core.executor import child_process_executor as cpe

    cpe.TICK = STEP_EVENT_POLL_SECONDS
    if not getattr(cpe._poll_for_event, "hub_bursts", False):  # looked up at each poll
        cpe._poll_for_event = _poll_for_event_factory(cpe)
    _nap_pending_claims()


def _poll_for_event_factory(cpe):
    """Dagster's ``_poll_for_event`` (one event from a step process's queue, or None, or the
    sentinel once the process is gone and its queue empty), without the wait on an empty queue
    while another step process's events are flowing."""

    def _poll_for_event(process, event_queue):
        other_flowing = (
            _flowing["queue"] is not None
            and _flowing["queue"] is not event_queue
            and time.monotonic() - _flowing["at"] < BURST_SECONDS
        )
        try:
            event = event_queue.get(block=not other_flowing, timeout=cpe.TICK)
        except queue.Empty:
            if not process.is_alive():
                # it may have sent one more event and died since the last get: drain it first
                try:
                    return event_queue.get(block=False)
                except queue.Empty:
                    return cpe.PROCESS_DEAD_AND_QUEUE_EMPTY
            return None
        _flowing["queue"], _flowing["at"] = event_queue, time.monotonic()
        return event

    _poll_for_event.hub_bursts = True  # type: ignore[attr-defined]
    return _poll_for_event


def _nap_pending_claims() -> None:
    """Make a pending claim that is not yet due wait a little (once per process)."""
    from dagster._core.execution.plan import instance_concurrency_context as icc

    context = icc.InstanceConcurrencyContext
    if getattr(context.claim, "hub_naps", False):
        return
    claim = context.claim

    @functools.wraps(claim)
    def claim_or_nap(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        due = self._pending_timeouts.get(step_key) if step_key in self._pending_claims else None
        if due is not None:
            wait = due - time.time()
            if wait > 0:  # not yet due: Dagster answers False at once, and its loop asks again
                time.sleep(min(wait, PENDING_CLAIM_NAP))
        return claim(self, concurrency_key, step_key, step_priority)

    claim_or_nap.hub_naps = True  # type: ignore[attr-defined]
    context.claim = claim_or_nap
