"""Fixtures shared by unit tests."""

from __future__ import annotations

import pytest

import schemas.validate_chunks as validate_chunks


@pytest.fixture
def per_row_checked(monkeypatch) -> list[int]:
    """Rows that went through the per-row checks (pandera models, parse errors), per call."""
    seen: list[int] = []
    real = validate_chunks._column_failures

    def counting(entity, df):
        seen.append(df.height)
        return real(entity, df)

    monkeypatch.setattr(validate_chunks, "_column_failures", counting)
    return seen
