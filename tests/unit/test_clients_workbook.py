"""WorkbookClient (柞水 xlsx, 丹凤 csv): a loopback fake of the file service for precise faults,
and the real simulator for the served files, basic auth and new uploads."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import unquote

import pytest
import requests

from base.errors import SourceError
from pipelines.connectors.workbook.client import WorkbookClient
from pipelines.http import source_settings
from pipelines.landing import land
from pipelines.sources import client_for
from seeds.registry import county
from tests.unit.test_clients_http import FAST, FakeServer, Req, Resp, fault_response, jresp

USER, PASSWORD = "zhashui-drop", "drop-Secret-5521"


def entry(name: str, data: bytes, uploaded: str) -> dict:
    return {
        "name": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "uploadedAt": uploaded,
        "exportDate": uploaded[:10],
        "kind": "register",
    }


class FakeDrop:
    def __init__(self, auth: bool = True) -> None:
        self.auth = auth
        self.files: dict[str, bytes] = {}
        self.index: list[dict] = []
        self.faults: list[list] = []  # [kind, remaining, "index"|"file"]

    def upload(self, name: str, data: bytes, uploaded: str) -> None:
        self.files[name] = data
        self.index.append(entry(name, data, uploaded))

    def __call__(self, req: Req) -> Resp:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.auth and req.headers.get("authorization") != expected:
            return Resp(401, b"Unauthorized", "text/plain", {"WWW-Authenticate": "Basic"})
        label = "index" if req.path == "/exports/index.json" else "file"
        if label == "index":
            real = jresp({"files": self.index})
        else:
            name = unquote(req.path.removeprefix("/exports/"))
            if name not in self.files:
                return Resp(404, b"Not Found", "text/plain")
            real = Resp(200, self.files[name], "application/octet-stream")
        for f in self.faults:
            if f[1] > 0 and f[2] == label:
                f[1] -= 1
                if f[0] == "corrupt":  # same size, different bytes
                    return Resp(200, b"X" + real.body[1:], real.content_type)
                return fault_response(f[0], real)
        return real


NAMES = [f"柞水县建档立卡贫困人口明细_2016070{d}.xlsx" for d in (1, 8)]


@pytest.fixture
def drop():
    fake = FakeDrop()
    fake.upload(NAMES[0], b"PK\x03\x04first-week", "2016-07-01T18:20:00+08:00")
    fake.upload(NAMES[1], b"PK\x03\x04second-week!", "2016-07-08T18:20:00+08:00")
    with FakeServer(fake) as server:
        fake.server = server
        yield fake


def make_client(fake: FakeDrop, with_auth: bool = True) -> WorkbookClient:
    c = county("zhashui")
    settings = {"HUB_ZHASHUI_URL": fake.server.url + "/"}
    if with_auth:
        settings |= {"HUB_ZHASHUI_KEY": USER, "HUB_ZHASHUI_SECRET": PASSWORD}
    return WorkbookClient(c, source_settings(c, settings), FAST)


def test_first_sync_lands_index_and_every_file(drop: FakeDrop) -> None:
    pages = list(make_client(drop).fetch("incremental", {}))
    assert [p.entity for p in pages] == ["index", "file", "file"]
    assert json.loads(pages[0].body)["files"] == drop.index
    assert pages[0].meta["selected"] == NAMES
    for page, name in zip(pages[1:], NAMES, strict=True):
        assert page.body == drop.files[name]
        assert page.meta["name"] == name
        assert page.meta["sha256"] == hashlib.sha256(page.body).hexdigest()
        assert page.meta["exportDate"] and page.meta["uploadedAt"]
        assert "%E6%9F%9E" in page.url  # 柞, percent-encoded


def test_only_files_after_the_watermark(drop: FakeDrop) -> None:
    pages = list(make_client(drop).fetch("incremental", {"file": NAMES[0]}))
    assert [p.meta.get("name") for p in pages[1:]] == [NAMES[1]]
    assert list(make_client(drop).fetch("incremental", {"file": NAMES[1]}))[1:] == []
    # a full sync with nothing new still lands the latest snapshot
    full = list(make_client(drop).fetch("full", {"file": NAMES[1]}))
    assert [p.meta.get("name") for p in full[1:]] == [NAMES[1]]


def test_unknown_watermark_file_is_a_clear_error(drop: FakeDrop) -> None:
    with pytest.raises(SourceError, match=r"'gone\.xlsx' .*not in the index"):
        list(make_client(drop).fetch("incremental", {"file": "gone.xlsx"}))


@pytest.mark.parametrize("kind", ["truncate", "corrupt", "html200", "drop_connection", "http500"])
def test_transient_download_problems_are_retried(drop: FakeDrop, kind: str) -> None:
    drop.faults.append([kind, 2, "file"])
    pages = list(make_client(drop).fetch("incremental", {}))
    assert [p.body for p in pages[1:]] == [drop.files[n] for n in NAMES]


@pytest.mark.parametrize(
    ("kind", "words"),
    [("truncate", "bytes received, the index says"), ("corrupt", "does not match the index's")],
)
def test_persistent_mismatch_names_county_and_file(drop: FakeDrop, kind: str, words: str) -> None:
    drop.faults.append([kind, 100, "file"])
    with pytest.raises(SourceError) as err:
        list(make_client(drop).fetch("incremental", {}))
    message = str(err.value)
    assert message.startswith("柞水县 (611026, zhashui): http://127.0.0.1:")
    assert f"file {NAMES[0]}: " in message and words in message
    assert PASSWORD not in message


def test_index_faults(drop: FakeDrop) -> None:
    drop.faults.append(["html200", 1, "index"])
    assert len(list(make_client(drop).fetch("incremental", {}))) == 3
    drop.faults.append(["truncate", 100, "index"])
    with pytest.raises(SourceError, match=r"index\.json: truncated JSON"):
        list(make_client(drop).fetch("incremental", {}))


def test_missing_credentials_fail_clearly(drop: FakeDrop) -> None:
    with pytest.raises(SourceError, match=r"exports/index\.json: HTTP 401"):
        list(make_client(drop, with_auth=False).fetch("incremental", {}))


# ---------------------------------------------------------------------------------------------
# Against the real simulator
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    embedded = pytest.importorskip("simulator.embedded")
    handle = embedded.start_in_thread(
        seed=11, scale=0.004, counties=[county("zhashui"), county("danfeng")]
    )
    yield handle
    handle.stop()


def test_simulator_files_are_landed_and_verified(sim) -> None:
    env = {**sim.env(), "HUB_HTTP_BACKOFF": "0.01"}
    for slug, magic in (("zhashui", b"PK\x03\x04"), ("danfeng", "县".encode("gb18030"))):
        client = client_for(county(slug), env)
        pages = list(client.fetch("incremental", {}))
        index = json.loads(pages[0].body)["files"]
        assert [p.meta["name"] for p in pages[1:]] == [f["name"] for f in index]
        assert pages[1].body.startswith(magic) or magic in pages[1].body[:64]
        # a new weekly upload is the only file of the next sync
        made = requests.post(f"{sim.url}/_sim/export", params={"county": slug}, timeout=30).json()
        new = made["exports"][0]["name"]
        later = list(client.fetch("incremental", {"file": index[-1]["name"]}))
        assert [p.meta["name"] for p in later[1:]] == [new]


def test_simulator_faults_on_files(sim) -> None:
    env = {**sim.env(), "HUB_HTTP_BACKOFF": "0.01", "HUB_HTTP_BODY_ATTEMPTS": "3"}
    client = client_for(county("zhashui"), env)
    for kind in ("truncate", "drop_connection", "html502", "maintenance"):
        requests.post(
            f"{sim.url}/_sim/faults",
            json={"county": "611026", "kind": kind, "count": 1, "entity": "file"},
            timeout=5,
        ).raise_for_status()
        pages = list(client.fetch("incremental", {}))
        for page in pages[1:]:
            assert hashlib.sha256(page.body).hexdigest() == page.meta["sha256"]
    requests.post(
        f"{sim.url}/_sim/faults",
        json={"county": "611026", "kind": "truncate", "count": 50, "entity": "file"},
        timeout=5,
    ).raise_for_status()
    with pytest.raises(SourceError, match=r"柞水县 .*: file 柞水县建档立卡.*bytes received"):
        list(client.fetch("incremental", {}))
    requests.delete(f"{sim.url}/_sim/faults", params={"county": "611026"}, timeout=5)
    bad = {**env, "HUB_ZHASHUI_SECRET": "not-it-12345"}
    with pytest.raises(SourceError, match="HTTP 401") as err:
        list(client_for(county("zhashui"), bad).fetch("incremental", {}))
    assert "not-it-12345" not in str(err.value)


@pytest.mark.parametrize("kind", ["truncate", "corrupt", "html200"])
def test_in_a_landing_files_go_to_disk_as_they_arrive(drop: FakeDrop, tmp_path, kind: str) -> None:
    """With ``spool_dir`` (set by ``landing.land``) a file is written there as it arrives and
    verified on the way: a retried download starts the file over; the page names the file."""
    drop.faults.append([kind, 1, "file"])
    client = make_client(drop)
    client.spool_dir = tmp_path
    pages = list(client.fetch("incremental", {}))
    for page, name in zip(pages[1:], NAMES, strict=True):
        assert page.body == b"" and page.file is not None and page.file.parent == tmp_path
        assert page.file.name.endswith(".part")  # a killed landing's leftover, removed later
        assert page.content() == drop.files[name]
    assert len(list(tmp_path.iterdir())) == 2


def test_a_download_that_keeps_failing_leaves_no_file(drop: FakeDrop, tmp_path) -> None:
    drop.faults.append(["truncate", 100, "file"])
    client = make_client(drop)
    client.spool_dir = tmp_path
    with pytest.raises(SourceError, match="bytes received, the index says"):
        list(client.fetch("incremental", {}))
    assert list(tmp_path.iterdir()) == []


def test_a_landing_moves_the_downloaded_file_into_place(drop: FakeDrop, tmp_path) -> None:
    manifest = land(county("zhashui"), make_client(drop), "incremental", {}, root=tmp_path)
    files = [p for p in manifest.pages if p.entity == "file"]
    assert [p.body() for p in files] == [drop.files[n] for n in NAMES]  # sha256 verified
    assert [p.size for p in files] == [len(drop.files[n]) for n in NAMES]
    assert [p.path.suffix for p in files] == [".xlsx", ".xlsx"]
    assert not list(manifest.path.parent.glob("*.part"))
