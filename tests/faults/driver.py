"""A hub command run as a real process for the fault suite, optionally stopping at a chosen
point so the test can ``kill -9`` it there (or let it go on).

    python -m tests.faults.driver [--pause-at landing|merge|checkpoint|touch|publish] [--ready FILE] [--go FILE]
                                  -- <hub arguments, e.g. sync luonan --mode full>

``--pause-at`` wraps one product function in this process only: ``landing`` with the fourth
page written as ``.part`` but not yet renamed, ``merge`` inside the merge transaction after the upserts (the warehouse lock
held), ``checkpoint`` after the merge's COMMIT (in the WAL) and before its checkpoint
(``warehouse.checkpoint``), ``touch`` after the merge's COMMIT and the first piece of the touch of unchanged rows
(``warehouse.touch``), before the second piece's transaction, ``publish`` half-way through the
byte copy of the snapshot. At that point the driver
creates ``--ready`` and waits until ``--go`` exists (forever without ``--go``): the test then
kills the process, or creates ``--go`` to let it finish. The command itself is the real ``hub``;
``dagster-job <name>`` runs one job of ``pipelines.jobs`` the way ``hub demo`` does.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _pause(ready: Path | None, go: Path | None) -> None:
    if ready is not None:
        ready.write_text("paused\n")
    while go is None or not go.exists():
        time.sleep(0.02)


def install(point: str, ready: Path | None, go: Path | None) -> None:
    import warehouse
    from pipelines import landing

    if point == "landing":
        import os
        import types

        real_replace = os.replace
        renamed = []

        def replace(src, dst):
            # the fourth page's body is on disk as <name>.part: stop before its rename
            if str(src).endswith(".part") and not str(src).endswith("manifest.json.part"):
                renamed.append(src)
                if len(renamed) == 4:
                    _pause(ready, go)
            return real_replace(src, dst)

        patched = types.ModuleType("os")
        patched.__dict__.update(os.__dict__)
        patched.replace = replace
        landing.os = patched
    elif point == "merge":
        original_delete = warehouse.merge._soft_delete

        def soft_delete(*args, **kwargs):
            _pause(ready, go)
            return original_delete(*args, **kwargs)

        warehouse.merge._soft_delete = soft_delete
    elif point == "checkpoint":
        import warehouse.checkpoint

        real_checkpoint = warehouse.checkpoint.checkpoint

        def checkpoint(con, limit, *memory_limit):
            _pause(ready, go)  # the merge has committed into the WAL, not yet checkpointed
            return real_checkpoint(con, limit, *memory_limit)

        warehouse.checkpoint.checkpoint = checkpoint
    elif point == "touch":
        from contextlib import contextmanager

        import warehouse.touch

        pieces = []
        real_transaction = warehouse.touch.transaction

        @contextmanager
        def transaction(con, *args, **kwargs):
            pieces.append(1)
            if len(pieces) == 2:  # the first piece has committed
                _pause(ready, go)
            with real_transaction(con, *args, **kwargs) as c:
                yield c

        warehouse.touch.transaction = transaction
    elif point == "publish":
        import shutil
        import types

        def copyfile(src, dst):
            data = Path(src).read_bytes()
            Path(dst).write_bytes(data[: len(data) // 2])
            _pause(ready, go)
            return shutil.copyfile(src, dst)

        patched = types.ModuleType("shutil")
        patched.__dict__.update(shutil.__dict__)
        patched.copyfile = copyfile
        import warehouse.live_copy  # the byte copy of the live file lives here

        warehouse.live_copy.shutil = patched
    else:
        raise SystemExit(f"unknown pause point {point}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause-at")
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--go", type=Path)
    parser.add_argument("hub", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    hub_args = args.hub[1:] if args.hub[:1] == ["--"] else args.hub
    if args.pause_at:
        install(args.pause_at, args.ready, args.go)
    if hub_args[:1] == ["dagster-job"]:
        return dagster_job(hub_args[1])
    from pipelines.cli import app

    return app(hub_args, standalone_mode=False) or 0


def dagster_job(name: str) -> int:
    """What `hub demo` does around each job, for one job of ``pipelines.jobs``: free the slots
    of dead runs, then run it with the pool watch (``pipelines.demo``, as `hub demo` runs it)."""
    from pipelines import cli, demo
    from seeds.registry import counties

    cli._dagster_home()
    with cli._free_dead_runs():
        if name == "sync_city_job":
            ok, cause, _ = demo.run_city(cli.console)
            print(f"run {'succeeded' if ok else 'failed'} {cause or ''}", flush=True)
        else:
            run = demo.run_counties(cli.console, name, list(counties()), "incremental")
            ok = not run.interrupted and all(o.merged for o in run.outcomes)
            print(f"run {run.run_id} {'succeeded' if ok else 'failed'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
