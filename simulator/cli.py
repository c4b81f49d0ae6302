"""``hub-simulator``: run the stand-in county platforms, query truth, move the clock."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import requests
import typer

from seeds import DIVISIONS

app = typer.Typer(
    help="The bundled simulator of the Shangluo county platforms.", no_args_is_help=True
)

DEFAULT_URL = "http://127.0.0.1:8700"


def _url(url: str | None, state_file: Path | None) -> str:
    if url:
        return url.rstrip("/")
    if state_file and state_file.exists():
        return json.loads(state_file.read_text(encoding="utf-8"))["url"]
    return DEFAULT_URL


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8700,
    seed: int = 7,
    scale: float = 1.0,
    defect_rate: Annotated[float, typer.Option("--defect-rate")] = 0.01,
    divisions: Annotated[
        Path, typer.Option("--divisions", help="real division list directory")
    ] = DIVISIONS,
    synthetic_divisions: Annotated[
        bool, typer.Option("--synthetic-divisions", help="synthetic towns and villages instead")
    ] = False,
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="write url/pid here once serving")
    ] = None,
    rate_limit: Annotated[int, typer.Option(help="bigdata requests/s per app (0: off)")] = 200,
    token_ttl: Annotated[int, typer.Option(help="bigdata token lifetime, seconds")] = 1800,
    session_timeout: Annotated[
        float, typer.Option(help="battle session inactivity timeout, s")
    ] = 1800.0,
    workbook_auth: Annotated[
        bool, typer.Option(help="basic auth on the workbook file service")
    ] = True,
    quiet: bool = False,
) -> None:
    """Serve every county's platform on loopback until interrupted."""
    from simulator.embedded import write_state
    from simulator.server import SimConfig, make_server
    from simulator.world import World

    world = World(
        seed=seed,
        scale=scale,
        defect_rate=defect_rate,
        divisions_dir=None if synthetic_divisions else divisions,
    )
    config = SimConfig(
        token_ttl=token_ttl,
        session_timeout=session_timeout,
        rate_limit=rate_limit,
        workbook_auth=workbook_auth,
    )
    server = make_server(world, host=host, port=port, config=config, seed=seed, scale=scale)
    if state_file:
        write_state(
            state_file,
            {
                "url": server.url,
                "pid": os.getpid(),
                "seed": seed,
                "scale": float(scale),
                "defect_rate": float(defect_rate),
            },
        )
    if not quiet:
        typer.echo(
            f"simulator on {server.url} (seed {seed}, scale {scale}); credentials: GET {server.url}/_sim/info"
        )
        for platform in server.sim.platforms.values():
            c = platform.county
            typer.echo(f"  {c.name} {c.slug:<10} {c.kind}/{c.version:<5} {server.url}/{c.slug}")
    sys.stdout.flush()

    def stop(*_: object) -> None:  # SIGTERM ends serve_forever like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if state_file and state_file.exists():
            try:
                if json.loads(state_file.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    state_file.unlink()
            except (OSError, ValueError):
                pass


@app.command()
def truth(
    county: Annotated[str | None, typer.Option(help="county code or slug (default: all)")] = None,
    url: Annotated[str | None, typer.Option(help=f"simulator URL (default {DEFAULT_URL})")] = None,
    state_file: Path | None = None,
) -> None:
    """Print the injected defects (JSON lines) of a running simulator."""
    params = {"county": county} if county else {}
    r = requests.get(f"{_url(url, state_file)}/_sim/truth", params=params, timeout=60)
    r.raise_for_status()
    for row in r.json():
        typer.echo(json.dumps(row, ensure_ascii=False))


@app.command()
def advance(
    days: float = 1,
    minutes: float = 0,
    url: Annotated[str | None, typer.Option(help=f"simulator URL (default {DEFAULT_URL})")] = None,
    state_file: Path | None = None,
) -> None:
    """Move a running simulator's clock; prints the new time and the changes applied."""
    r = requests.post(
        f"{_url(url, state_file)}/_sim/clock/advance",
        params={"days": days, "minutes": minutes},
        timeout=600,
    )
    r.raise_for_status()
    typer.echo(json.dumps(r.json(), ensure_ascii=False))


if __name__ == "__main__":
    app()
