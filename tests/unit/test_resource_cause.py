"""The real cause of a machine-side failure, found in the error or the errors behind it."""

from __future__ import annotations

import errno

import duckdb

from base.errors import resource_cause

SPILL_FULL = (
    "TransactionContext Error: Failed to commit: failed to offload data block of size 256.0 KiB "
    "(0 bytes/10.7 KiB used).\nThis limit was set by the 'max_temp_directory_size' setting."
)


def test_duckdb_spill_disk_full_is_named_as_no_space():
    cause = resource_cause(duckdb.TransactionException(SPILL_FULL))
    assert cause is not None and cause.startswith("no space left on the disk of DuckDB's temp")
    assert "failed to offload data block" in cause and "\n" not in cause


def test_errno_behind_a_wrapper_is_found():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert resource_cause(outer).startswith("no space left on the device (disk full) (ENOSPC")


def test_a_data_error_has_no_resource_cause():
    assert resource_cause(duckdb.ConstraintException("Duplicate key")) is None
