"""A new platform kind is one folder plus one registration line (issue 14): the toy kind of
``tests/e2e/toy_kind/`` (a client, a normaliser, one ``register`` call) syncs an eighth
county of that kind end to end through ``pipelines.sync``, from a tiny platform on loopback,
with nothing else in the hub edited. Run in a fresh interpreter under an eighth registry row
(``HUB_REGISTRY``), as tests/e2e/test_registry.py does."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.e2e.test_registry import _registry, _run

pytestmark = pytest.mark.e2e

TOY_ROW = "611098,玩具县,Toy County,toytown,toy,1,0.05,team:toy"
KEY = "toy-key-1"
REGIONS = [
    {"code": "611098100", "level": "town", "name": "玩具镇", "parent": "611098"},
    {"code": "611098100201", "level": "village", "name": "东村", "parent": "611098100"},
    {"code": "611098100202", "level": "village", "name": "西村", "parent": "611098100"},
]
PROJECTS = [
    {
        "id": "P1",
        "village": "611098100201",
        "category": "road",
        "name": "村道",
        "status": "completed",
    },
    {
        "id": "P2",
        "village": "611098100202",
        "category": "water",
        "name": "水井",
        "status": "planned",
    },
    # an unknown project category: quarantined with its reason, the rest merged
    {
        "id": "P3",
        "village": "611098100202",
        "category": "rockets",
        "name": "火箭",
        "status": "planned",
    },
]


class ToyPlatform(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self):
        ToyPlatform.seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_error(401)
            return
        listing = {"/toytown/regions": REGIONS, "/toytown/projects": PROJECTS}.get(self.path)
        if listing is None:
            self.send_error(404)
            return
        body = json.dumps(listing, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


SYNC_TOY_COUNTY = r"""
import json, sys
from pipelines.connectors.registry import UnknownKind, connector_for
from seeds.registry import county

toy = county(sys.argv[1])
try:
    connector_for(toy)
    unknown_before = None
except UnknownKind as exc:
    unknown_before = str(exc)

import tests.e2e.toy_kind  # the kind's package: its one register() line

from pipelines import sync
from tests.e2e.helpers import live

landed = sync.land(toy, "full")
merged = sync.merge(toy, landed)
with live() as con:
    out = {
        "unknown_before": unknown_before,
        "counts": merged.counts,
        "regions": sorted(r[0] for r in con.execute(
            "SELECT code FROM core.region WHERE county_code = ? AND level <> 'county'", [toy.code]
        ).fetchall()),
        "projects": sorted(r[0] for r in con.execute(
            "SELECT project_id FROM core.project WHERE county_code = ?", [toy.code]
        ).fetchall()),
        "rejects": con.execute(
            "SELECT source_key, rule FROM ops.reject WHERE county_code = ?", [toy.code]
        ).fetchall(),
        "platform": con.execute(
            "SELECT DISTINCT source_platform FROM core.project WHERE county_code = ?", [toy.code]
        ).fetchall(),
    }
print("RESULT " + json.dumps(out, default=str))
"""


def test_a_new_platform_kind_is_one_folder_and_one_registration(tmp_path, hub_home, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), ToyPlatform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ToyPlatform.seen.clear()
    try:
        registry = _registry(tmp_path, extra=TOY_ROW)
        url = f"http://127.0.0.1:{server.server_address[1]}/toytown"
        for name, value in {"URL": url, "KEY": KEY, "SECRET": "s"}.items():
            monkeypatch.setenv(f"HUB_TOYTOWN_{name}", value)
        out = _run(SYNC_TOY_COUNTY, registry, "toytown")
    finally:
        server.shutdown()
        server.server_close()

    assert "no connector for platform kind 'toy'" in out["unknown_before"]
    assert {path for path, _ in ToyPlatform.seen} == {"/toytown/regions", "/toytown/projects"}
    assert out["regions"] == [r["code"] for r in REGIONS]
    assert out["projects"] == ["P1", "P2"]
    assert [tuple(r) for r in out["rejects"]] == [("P3", "unknown_code")]
    assert out["platform"] == [["toy"]]
