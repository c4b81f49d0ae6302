"""The warehouse lock: exclusive writers, shared readers, the holder named, a bounded wait."""

from __future__ import annotations

import threading

import pytest

from warehouse import lock as warehouse_lock
from warehouse.lock import WarehouseBusy, hold, working_for


def test_a_second_writer_times_out_naming_the_holder(tmp_path, capsys):
    db = tmp_path / "hub.duckdb"
    got = threading.Event()
    release = threading.Event()

    def first():
        with working_for(county="luonan", run="run-1", purpose="merge"), hold(db):
            got.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    got.wait(10)
    try:
        with (
            pytest.raises(WarehouseBusy) as busy,
            working_for(county="shangnan"),
            hold(db, timeout=0.3),
        ):
            pass
    finally:
        release.set()
        t.join()
    message = str(busy.value)
    assert "luonan merge" in message and "run run-1" in message and "PID" in message, message
    assert "shangnan" in capsys.readouterr().err  # said whom it waited for while waiting
    with hold(db, timeout=0.3):  # released: free again
        pass


def test_readers_share_and_keep_writers_out(tmp_path):
    db = tmp_path / "hub.duckdb"
    with hold(db, shared=True):
        done = []
        t = threading.Thread(target=lambda: done.append(_try(db, shared=True)))
        t.start()
        t.join()
        assert done == [True]
        t = threading.Thread(target=lambda: done.append(_try(db, shared=False)))
        t.start()
        t.join()
        assert done == [True, False]


def test_nested_holds_in_one_thread_do_not_wait_for_themselves(tmp_path):
    db = tmp_path / "hub.duckdb"
    with hold(db), hold(db, timeout=0.1), hold(db, shared=True, timeout=0.1):
        pass


def _try(db, shared: bool) -> bool:
    try:
        with hold(db, shared=shared, timeout=0.2):
            return True
    except warehouse_lock.WarehouseBusy:
        return False
