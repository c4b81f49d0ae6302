"""Run the simulator inside this process (tests) or as a detached background process shared by
several pipeline runs (the embedded default of ``hub demo``/Dagster, DESIGN decision 8).

Credentials are deterministic development values (``<slug>-app`` / ``sim-<slug>-secret``); they
are handed over through ``env()`` / ``info`` and never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from seeds import DIVISIONS, registry


def credentials(slug: str) -> dict[str, str]:
    """The simulator's dev credentials of a county: key (appKey / username) and secret."""
    return {"key": f"{slug}-app", "secret": f"sim-{slug}-secret"}


def env_for(base_url: str, slugs: list[str] | None = None) -> dict[str, str]:
    """``HUB_<SLUG>_URL/_KEY/_SECRET`` of every county served at ``base_url``."""
    out: dict[str, str] = {}
    for c in registry.counties():
        if slugs is not None and c.slug not in slugs:
            continue
        creds = credentials(c.slug)
        out[c.env_prefix + "URL"] = f"{base_url}/{c.slug}"
        out[c.env_prefix + "KEY"] = creds["key"]
        out[c.env_prefix + "SECRET"] = creds["secret"]
    return out


@dataclass
class SimulatorHandle:
    """A simulator serving from a thread of this process."""

    url: str
    server: Any  # simulator.server.SimulatorServer
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def sim(self):
        return self.server.sim

    @property
    def world(self):
        return self.server.sim.world

    def base_url(self, slug: str) -> str:
        return f"{self.url}/{registry.county(slug).slug}"

    def credentials(self, slug: str) -> dict[str, str]:
        return credentials(registry.county(slug).slug)

    def env(self) -> dict[str, str]:
        return env_for(self.url, list(self.sim.platforms))

    def advance(self, days: float = 0, minutes: float = 0) -> dict:
        """Move the clock in-process (weekly workbook exports follow, as over HTTP)."""
        return self.sim.advance(days=days, minutes=minutes)

    def prepare(self, counties: list[str] | None = None) -> None:
        """Render every listing (of ``counties`` only, if given) for the current clock before
        a benchmark times anything."""
        self.sim.prepare(counties)

    def truth(self, county: str):
        """The injected defects of a county (code or slug), as the World's frame."""
        code = self.sim.county(county).code
        with self.world.lock:
            return self.world.truth(code)

    def arm_fault(
        self, county: str, kind: str, count: int = 1, entity: str | None = None, **more
    ) -> None:
        """``POST /_sim/faults`` in-process (county code or slug)."""
        from simulator.faults import Fault

        self.sim.faults.arm(
            Fault(
                county=self.sim.county(county).code,
                kind=kind,
                remaining=count,
                entity=entity,
                **more,
            )
        )

    def clear_faults(self) -> int:
        return self.sim.faults.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(
    seed: int = 7,
    scale: float = 1.0,
    defect_rate: float = 0.01,
    defect_rates: dict | None = None,
    divisions_dir: str | Path | None = DIVISIONS,  # None: synthetic divisions
    counties: list[str] | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    config: Any = None,
    world: Any = None,
    **world_kwargs: Any,
) -> SimulatorHandle:
    """Build a World (or use ``world``) and serve it from a daemon thread on loopback."""
    from simulator.server import make_server

    if world is None:
        from simulator.world import World

        world = World(
            seed=seed,
            scale=scale,
            defect_rate=defect_rate,
            defect_rates=defect_rates,
            divisions_dir=divisions_dir,
            counties=counties,
            **world_kwargs,
        )
    server = make_server(world, host=host, port=port, config=config, seed=seed, scale=scale)
    # a short poll interval makes stop() return promptly (tests start and stop many servers)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="hub-simulator",
        daemon=True,
    )
    thread.start()
    return SimulatorHandle(url=server.url, server=server, thread=thread)


# ---------------------------------------------------------------------------------------------
# A shared background simulator
# ---------------------------------------------------------------------------------------------


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return requests.get(f"{url}/_sim/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(path: Path, state: dict) -> None:
    """Atomically record a running simulator (url, pid, seed, scale…)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def ensure_running(
    state_dir: str | Path,
    seed: int = 7,
    scale: float = 1.0,
    defect_rate: float = 0.01,
    divisions_dir: str | Path | None = DIVISIONS,  # None: synthetic divisions
    timeout: float = 300.0,
) -> dict:
    """The ``/_sim/info`` of a simulator with this seed/scale/defect rate: the one recorded in
    ``<state_dir>/simulator.json`` if it still answers, else a new detached
    ``python -m simulator.cli serve`` (its log in ``<state_dir>/simulator.log``)."""
    state_dir = Path(state_dir)
    state_file = state_dir / "simulator.json"
    wanted = {"seed": seed, "scale": float(scale), "defect_rate": float(defect_rate)}
    state = _read_state(state_file)
    if state and _healthy(state.get("url", "")):
        if all(state.get(k) == v for k, v in wanted.items()):
            return requests.get(f"{state['url']}/_sim/info", timeout=10).json()
        # a simulator of another world: stop the one we recorded, then start ours
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{state['url']}/_sim/shutdown", timeout=5)
    state_file.unlink(missing_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "simulator.cli",
        "serve",
        "--port",
        "0",
        "--seed",
        str(seed),
        "--scale",
        str(scale),
        "--defect-rate",
        str(defect_rate),
        "--state-file",
        str(state_file),
        "--quiet",
    ]
    cmd += ["--divisions", str(divisions_dir)] if divisions_dir else ["--synthetic-divisions"]
    repo = Path(__file__).resolve().parent.parent
    with (state_dir / "simulator.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the caller; shared by later runs
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(repo), os.environ.get("PYTHONPATH")])
                ),
            },
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"simulator exited with status {proc.returncode} while starting; see {state_dir / 'simulator.log'}"
            )
        state = _read_state(state_file)
        if state and _healthy(state["url"]):
            return requests.get(f"{state['url']}/_sim/info", timeout=10).json()
        time.sleep(0.2)
    raise TimeoutError(
        f"simulator did not become healthy within {timeout:.0f}s; see {state_dir / 'simulator.log'}"
    )
