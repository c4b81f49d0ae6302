"""pipelines.connectors.battle.keys: the battle client's page decoder and its exact, out-of-core
count of the distinct keys of a listing (issue 13)."""

from __future__ import annotations

import json

import msgspec
import pytest

from pipelines.connectors.battle.keys import (
    DistinctKeys,
    RawRecords,
    fingerprint,
    list_decoder,
    page_keys,
)


def _page(rows, **envelope) -> bytes:
    return json.dumps(
        {"total": len(rows), "rows": rows, "code": 200, "msg": "ok", **envelope}
    ).encode()


def test_decoder_reads_the_envelope_and_the_keys_without_the_rows():
    rows = [{"hbh": f"H{i}", "hzxm": "张三", "extra": {"deep": [1, 2]}} for i in range(3)]
    page = list_decoder(["hbh"])(_page(rows))
    assert (page["code"], page["msg"], page["total"]) == (200, "ok", 3)
    assert isinstance(page["rows"], RawRecords) and len(page["rows"]) == 3
    assert page["rows"][0] == rows[0] and list(page["rows"]) == rows
    assert page.row_keys == [["H0", "H1", "H2"]]
    composite = list_decoder(["hbh", "bfrbh"])(_page([{"hbh": "H1", "bfrbh": "C9"}]))
    assert composite.row_keys == [["H1"], ["C9"]]


@pytest.mark.parametrize(
    "body",
    [
        _page([{"hbh": 7}]),  # a key that is not text: read from the Python rows instead
        _page([{"hzxm": "x"}]),  # a row without its key
        _page(["not a row"]),
        b'{"code": 500, "msg": "busy"}',  # no rows: the full parse interprets it
        b"<html>gateway</html>",
        b'{"code": 200, "total": 1, "rows": [{"hbh": NaN}]}',
    ],
)
def test_decoder_refuses_what_the_full_parse_must_judge(body):
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        list_decoder(["hbh"])(body)


def test_keys_compare_as_a_python_set_compared_them():
    rows = [{"k": 1}, {"k": 1.0}, {"k": True}, {"k": "1"}, {"k": None}, {"k": 2.5}, {"k": "x"}]
    keys = page_keys(["k"], rows)
    python_set = {r["k"] for r in rows}  # {1, "1", None, 2.5, "x"}
    with DistinctKeys() as seen:
        seen.add(keys)
        assert seen.count() == len(python_set) == 5
    text = page_keys(["k"], [], text_keys=[["1", "x"]])
    assert text.texts == page_keys(["k"], [{"k": "1"}, {"k": "x"}]).texts
    assert fingerprint(text) == fingerprint(page_keys(["k"], [{"k": "1"}, {"k": "x"}]))
    assert fingerprint(text) != fingerprint(page_keys(["k"], [{"k": 1}, {"k": "x"}]))


@pytest.mark.parametrize("row", [{"other": 1}, {"k": {"a": 1}}, {"k": [1]}, "text", [1, 2]])
def test_a_row_without_a_plain_key_is_refused_as_before(row):
    with pytest.raises((KeyError, TypeError)):
        page_keys(["k"], [{"k": "fine"}, row])


def test_distinct_count_in_memory_and_out_of_core_agree(tmp_path):
    passes = [[f"P{i % 700:04d}" for i in range(p * 300, p * 300 + 900)] for p in range(3)]
    expected = len({k for keys in passes for k in keys})
    counts = {}
    for buffer_rows in (10**6, 250):  # everything in memory / a Parquet part every 250 keys
        with DistinctKeys(buffer_rows=buffer_rows, directory=tmp_path) as seen:
            for keys in passes:
                for start in range(0, len(keys), 100):  # pages of 100
                    seen.add(page_keys(["k"], [], text_keys=[keys[start : start + 100]]))
                counts.setdefault(buffer_rows, []).append(seen.count())
            folders = list(tmp_path.glob("battle-keys-*"))
            assert bool(folders) == (buffer_rows == 250)
        assert not list(tmp_path.glob("battle-keys-*"))  # removed on close
    assert counts[10**6] == counts[250]
    assert counts[250][-1] == expected == 700


def test_composite_keys_count_each_pair_once(tmp_path):
    rows = [
        {"hbh": "H1", "bfrbh": "C1"},
        {"hbh": "H1", "bfrbh": "C2"},
        {"hbh": "H1", "bfrbh": "C1"},
    ]
    with DistinctKeys(buffer_rows=1, directory=tmp_path) as seen:
        seen.add(page_keys(["hbh", "bfrbh"], rows))
        assert seen.count() == 2


def test_fingerprint_tells_pages_apart_by_their_keys_in_order():
    a = page_keys(["k"], [], text_keys=[["A", "B"]])
    assert fingerprint(a) == fingerprint(page_keys(["k"], [{"k": "A"}, {"k": "B"}]))
    assert fingerprint(a) != fingerprint(page_keys(["k"], [], text_keys=[["B", "A"]]))
