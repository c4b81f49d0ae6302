"""The simulator's HTTP server: every county's platform under ``/<slug>``, plus the control API
under ``/_sim`` (faults, truth, clock, exports, info, health).

One ``ThreadingHTTPServer`` on loopback, HTTP/1.1 keep-alive with Content-Length, Nagle
disabled and each response written with a single ``sendall`` (a header/body split write plus
delayed ACK costs ~40 ms per page otherwise).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import polars as pl

from seeds import registry
from simulator.faults import Fault, FaultBoard
from simulator.platforms import Platform, Request, Response, json_response
from simulator.platforms.battle import BattlePlatform
from simulator.platforms.bigdata import BigdataPlatform
from simulator.platforms.workbook import WorkbookPlatform

PLATFORMS: dict[str, type[Platform]] = {
    "bigdata": BigdataPlatform,
    "battle": BattlePlatform,
    "workbook": WorkbookPlatform,
}

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
HTML_200 = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>系统升级</title></head>'
    "<body><h2>系统正在升级维护，请稍后访问。</h2></body></html>"
).encode()


def _county_codes(sim, county: str | None) -> list[str]:
    """The county a control request names (code or slug), or every county served."""
    return [sim.county(county).code] if county else [p.county.code for p in sim.platforms.values()]


@dataclass
class SimConfig:
    """Server behaviour that tests and benchmarks tune (``POST /_sim/config`` changes it live)."""

    token_ttl: int = 1800  # bigdata token lifetime (s): expiresIn
    session_timeout: float = 1800.0  # battle session inactivity timeout (s)
    rate_limit: int = 200  # bigdata requests per second per app; 0 = unlimited
    bigdata_page_cap: int = 0  # serve at most this many items per page (0 = the limit asked)
    workbook_auth: bool = True  # require basic auth on the workbook file service
    label_variant_share: int = 10  # % of battle rows whose labels use a variant spelling
    slow_seconds: float = 2.0  # the "slow" fault's delay

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown config {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool) and isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            setattr(self, name, type(current)(value))


class Simulator:
    """The World plus one platform per county, the fault board and the config."""

    def __init__(
        self,
        world,
        config: SimConfig | None = None,
        seed: int | None = None,
        scale: float | None = None,
        counties: list[registry.County] | None = None,
    ) -> None:
        self.world = world
        self.config = config or SimConfig()
        self.faults = FaultBoard()
        self.seed, self.scale = seed, scale
        self.base_url = ""  # set by the server once it has a port
        wanted = counties or list(registry.counties())
        self.platforms: dict[str, Platform] = {}
        for county in wanted:
            self.platforms[county.slug] = PLATFORMS[county.kind](self, county)

    def county(self, code_or_slug: str) -> registry.County:
        for p in self.platforms.values():
            if code_or_slug in (p.county.code, p.county.slug):
                return p.county
        raise KeyError(f"no county {code_or_slug!r} in this simulator")

    def platform(self, code_or_slug: str) -> Platform:
        return self.platforms[self.county(code_or_slug).slug]

    def advance(self, days: float = 0, minutes: float = 0) -> dict:
        with self.world.lock:
            changes = self.world.advance(days=days, minutes=minutes)
        for p in self.platforms.values():
            p.on_clock()
        return changes

    def prepare(self, counties: list[str] | None = None) -> None:
        """The listings of every platform (or of ``counties``, codes or slugs) rendered for
        the current clock (``Platform.prepare``)."""
        for slug in counties or list(self.platforms):
            self.platform(slug).prepare()

    def info(self) -> dict:
        return {
            "seed": self.seed,
            "scale": self.scale,
            "now": self.world.now.isoformat(),
            "url": self.base_url,
            "counties": {
                p.county.slug: {
                    "code": p.county.code,
                    "name": p.county.name,
                    "kind": p.county.kind,
                    "version": p.county.version,
                    "url": f"{self.base_url}/{p.county.slug}",
                    **p.credentials(),
                }
                for p in self.platforms.values()
            },
            "config": asdict(self.config),
        }


class _Drop(Exception):
    """Close the connection without answering (the drop_connection fault)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    server: SimulatorServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tokens travel in URLs/headers
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = unquote(parts.path)
        req = Request(self.command, path, query, self.headers, body)
        try:
            if path.startswith("/_sim/") or path == "/_sim":
                resp = self.server.control(req)
            else:
                resp = self.server.serve_county(req)
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception as e:  # a bug in the simulator: say so, keep serving
            resp = json_response({"error": f"simulator error: {type(e).__name__}: {e}"}, status=500)
        self._send(resp)

    def _send(self, resp: Response, cut: bool = False) -> None:
        body = resp.body
        head = [f"HTTP/1.1 {resp.status} {self.responses.get(resp.status, ('',))[0]}"]
        head.append(f"Content-Type: {resp.content_type}")
        head.append(f"Content-Length: {len(body)}")
        for k, v in resp.headers.items():
            if not k.startswith("X-Sim-"):
                head.append(f"{k}: {v}")
        abort = resp.headers.get("X-Sim-Abort") == "1"
        if abort:  # truncate/abort: announce the full body, send half, then close
            head.append("Connection: close")
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), Handler)
        self.sim = sim
        sim.base_url = f"http://{host}:{self.server_address[1]}"
        self.shutdown_requested = threading.Event()

    @property
    def url(self) -> str:
        return self.sim.base_url

    # -- county platforms ------------------------------------------------------------------
    def serve_county(self, req: Request) -> Response:
        slug, _, rest = req.path.lstrip("/").partition("/")
        platform = self.sim.platforms.get(slug)
        if platform is None:
            return Response(404, b"Not Found", "text/plain; charset=utf-8")
        req.path = "/" + rest
        label = platform.classify(req)
        fault = self.sim.faults.take(platform.county.code, label)
        if fault is None:
            return platform.handle(req)
        kind = fault.kind
        if kind == "slow":
            time.sleep(fault.seconds if fault.seconds is not None else self.sim.config.slow_seconds)
            return platform.handle(req)
        if kind == "expire_token":
            platform.expire_tokens()
            return platform.handle(req)
        if kind == "drop_connection":
            raise _Drop()
        if kind == "http500":
            return Response(500, b"Internal Server Error", "text/plain; charset=utf-8")
        if kind == "html502":
            return Response(502, HTML_502, "text/html")
        if kind == "html200":
            return Response(200, HTML_200, "text/html; charset=utf-8")
        if kind == "rate_limit":
            if platform.kind == "bigdata":
                body = b'{"code":42901,"message":"rate limited","data":null}'
            else:
                body = b"Too Many Requests"
            return Response(429, body, "application/json", {"Retry-After": "1"})
        if kind in ("busy", "maintenance"):
            return platform.fault_response(kind)
        resp = platform.handle(req)
        if kind == "truncate":
            if fault.variant == "abort":
                resp.headers["X-Sim-Abort"] = "1"
            else:  # an honest Content-Length over half a body: the payload itself is broken
                resp.body = resp.body[: len(resp.body) // 2]
            return resp
        if kind == "rename_field":
            pairs = (
                [(fault.field, fault.to or fault.field + "_")]
                if fault.field
                else platform.rename_candidates()
            )
            for old, new in pairs:
                needle = f'"{old}":'.encode()
                if needle in resp.body:
                    resp.body = resp.body.replace(needle, f'"{new}":'.encode())
                    break
            return resp
        return resp

    # -- control API -------------------------------------------------------------------------
    def control(self, req: Request) -> Response:
        sim = self.sim
        route = (req.method, req.path.rstrip("/"))
        try:
            if route == ("GET", "/_sim/health"):
                return json_response({"status": "ok", "now": sim.world.now.isoformat()})
            if route == ("GET", "/_sim/info"):
                return json_response(sim.info())
            if route == ("GET", "/_sim/faults"):
                return json_response({"faults": sim.faults.armed()})
            if route == ("POST", "/_sim/faults"):
                spec = json.loads(req.body or b"{}")
                county = sim.county(str(spec.pop("county")))
                fault = Fault(
                    county=county.code,
                    kind=spec.pop("kind"),
                    remaining=int(spec.pop("count", 1)),
                    entity=spec.pop("entity", None),
                    variant=spec.pop("variant", None),
                    field=spec.pop("field", None),
                    to=spec.pop("to", None),
                    k=int(spec.pop("k", 5)),
                    seconds=float(spec.pop("seconds", sim.config.slow_seconds)),
                )
                if spec:
                    raise ValueError(f"unknown fault fields {sorted(spec)}")
                sim.faults.arm(fault)
                return json_response({"armed": asdict(fault)})
            if route == ("DELETE", "/_sim/faults"):
                county = req.query.get("county")
                code = sim.county(county).code if county else None
                return json_response({"cleared": sim.faults.clear(code)})
            if route == ("GET", "/_sim/truth"):
                codes = _county_codes(sim, req.query.get("county"))
                with sim.world.lock:
                    frames = [sim.world.truth(c) for c in codes]
                truth = pl.concat(frames) if frames else pl.DataFrame()
                return Response(200, truth.write_json().encode() if truth.height else b"[]")
            if route == ("POST", "/_sim/clock/advance"):
                days = float(req.query.get("days") or 0)
                minutes = float(req.query.get("minutes") or 0)
                changes = sim.advance(days=days, minutes=minutes)
                return json_response({"now": sim.world.now.isoformat(), "changes": changes})
            if route == ("POST", "/_sim/export"):
                county = req.query.get("county")
                targets = (
                    [sim.platform(county)]
                    if county
                    else [p for p in sim.platforms.values() if p.kind == "workbook"]
                )
                made = []
                for p in targets:
                    if not isinstance(p, WorkbookPlatform):
                        raise ValueError(f"county {p.county.slug} is not a workbook platform")
                    made.append(p.export().entry())
                return json_response({"exports": made})
            if route == ("POST", "/_sim/config"):
                sim.config.update(json.loads(req.body or b"{}"))
                return json_response({"config": asdict(sim.config)})
            if route == ("GET", "/_sim/stats"):
                codes = _county_codes(sim, req.query.get("county"))
                with sim.world.lock:
                    return json_response({c: sim.world.stats(c) for c in codes})
            if route == ("POST", "/_sim/shutdown"):
                self.shutdown_requested.set()
                threading.Thread(target=self.shutdown, daemon=True).start()
                return json_response({"status": "stopping"})
        except (KeyError, ValueError, TypeError) as e:
            return json_response({"error": str(e)}, status=400)
        return json_response({"error": f"no control route {req.method} {req.path}"}, status=404)


def make_server(
    world, host: str = "127.0.0.1", port: int = 0, config: SimConfig | None = None, **info
) -> SimulatorServer:
    """A ready (bound, not yet serving) server over ``world``."""
    counties = None
    if getattr(world, "counties", None):
        wanted = {getattr(c, "code", c) for c in world.counties}
        counties = [c for c in registry.counties() if c.code in wanted]
    sim = Simulator(world, config=config, counties=counties, **info)
    return SimulatorServer(sim, host, port)
