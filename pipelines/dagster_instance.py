"""The Dagster instance file ``$DAGSTER_HOME/dagster.yaml`` of ``hub demo``, ``hub ui`` and
``make``: the repo's ``dagster.yaml`` where the hub may put it, never over an operator's file.

* no file: the repo's is written (owner-only, atomically);
* a file the hub wrote earlier and nobody edited since: refreshed from the repo's;
* anything else (``deploy/dagster.postgres.yaml`` put there by an operator, a hub copy someone
  edited, a symbolic link to a managed configuration): kept byte for byte, with one line naming
  it, and a warning when it lacks what the hub's jobs need (:func:`missing`).

How the hub recognises its own copy: it writes a header whose last line records the SHA-256 of
the body below it (the repo's file, unchanged). A file whose body still has that hash is the
hub's own, unedited; any edit, even one character below the header, breaks the hash, and the
file is the operator's from then on. The hash travels with the file (a copy, a restored backup,
a new version of the repo), which neither a side file beside it (lost or stale when the file is
copied or replaced) nor "identical to the repo's file" (false after every change of the repo's
``dagster.yaml``: exactly when a refresh is due) would. A file identical to the repo's without
the header (what ``make`` and earlier versions of ``hub`` copied) is also the hub's.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from base import paths, settings

FILE_NAME = "dagster.yaml"
#: The header's last line: this text, then the SHA-256 (hex) of everything after the line.
MARKER = "# hub-written body sha256: "
HEADER = (
    "# Written by the hub from the repo's dagster.yaml (pipelines/dagster_instance.py).\n"
    "# `hub demo` / `hub ui` / `make` refresh it while it is unedited. To keep your own instance\n"
    "# settings, edit this file (or replace it): the hub then leaves it as it is.\n"
)
#: The pool limit every pool of the hub's steps needs: one warehouse writer at a time, one merge
#: at a time per county (pipelines/defs/keys.py, pipelines/run_health.py).
POOL_LIMIT = 1


@dataclass(frozen=True)
class InstanceFile:
    """What :func:`prepare` did with ``path``: ``written`` (there was none), ``refreshed`` (the
    hub's earlier copy, now the repo's), ``current`` (already the repo's) or ``kept`` (the
    operator's, untouched); ``missing`` says what a kept file lacks for the hub's jobs."""

    path: Path
    action: str
    missing: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What to tell the operator, one sentence a line (nothing when nothing changed)."""
        said = {
            "written": f"Dagster instance: wrote the repo's dagster.yaml to {self.path}",
            "refreshed": f"Dagster instance: refreshed the hub's copy {self.path} from the repo",
            "kept": f"Dagster instance: keeping your {self.path} as it is (not the hub's copy)",
        }
        out = [said[self.action]] if self.action in said else []
        if self.missing:
            out.append(
                f"warning: {self.path} lacks what the hub's jobs need: " + "; ".join(self.missing)
            )
        return out


def repo_file() -> bytes:
    return (paths.REPO / FILE_NAME).read_bytes()


def hub_copy(body: bytes) -> bytes:
    """The file the hub writes: :data:`HEADER`, the marker line with ``body``'s hash, ``body``."""
    return f"{HEADER}{MARKER}{hashlib.sha256(body).hexdigest()}\n".encode() + body


def written_by_hub(content: bytes, repo_body: bytes) -> bool:
    """Is ``content`` a file the hub wrote and nobody edited since? Either the repo's file as
    it is (``repo_body``: what ``make`` and earlier versions of ``hub`` copied), or comment
    lines, then the :data:`MARKER` line, then a body whose SHA-256 is the one recorded (whatever
    the hub's version and the header's wording were then)."""
    if content == repo_body:
        return True
    head, sep, rest = content.partition(MARKER.encode())
    if not sep or not all(line.startswith(b"#") for line in head.splitlines()):
        return False
    if head and not head.endswith(b"\n"):
        return False  # the marker must start a line
    digest, newline, body = rest.partition(b"\n")
    return bool(newline) and hashlib.sha256(body).hexdigest().encode() == digest


def _write(path: Path, content: bytes, replace: bool = True) -> bool:
    """Owner-only and atomic: a reader never sees half a file; a crash leaves the old one.
    With ``replace=False`` an existing file wins (a file another process put there since the
    caller looked): nothing is written and the answer is False."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, settings.PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)  # fails if the name exists: never over someone's file
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def missing(config: object, pools: list[str], explicit: Mapping[str, int]) -> list[str]:
    """What an instance configuration ``config`` (the parsed YAML) lacks for the hub's
    ``pools``: each must resolve to a limit of :data:`POOL_LIMIT`, from a limit set for the pool
    in the instance's storage (``explicit``: ``dagster instance concurrency set <pool> 1``) or
    else from ``concurrency.pools.default_limit`` (or Dagster's older
    ``concurrency.default_op_concurrency_limit``)."""
    concurrency = config.get("concurrency") if isinstance(config, dict) else None
    concurrency = concurrency if isinstance(concurrency, dict) else {}
    pool_settings = concurrency.get("pools") if isinstance(concurrency.get("pools"), dict) else {}
    default = pool_settings.get("default_limit", concurrency.get("default_op_concurrency_limit"))
    wrong = {pool: explicit.get(pool, default) for pool in pools}
    wrong = {pool: limit for pool, limit in wrong.items() if limit != POOL_LIMIT}
    if not wrong:
        return []
    names = ", ".join(f"{pool} ({'unlimited' if v is None else v})" for pool, v in wrong.items())
    return [
        f"pool limit {POOL_LIMIT} for {names}: add `concurrency: {{pools: {{default_limit: "
        f"{POOL_LIMIT}}}}}` (as the repo's dagster.yaml has) or run `dagster instance concurrency "
        f"set <pool> {POOL_LIMIT}` for each; without it two steps may write the DuckDB "
        "warehouse, or merge one county, at once"
    ]


def _check(path: Path, pools: list[str], explicit: Callable[[], Mapping[str, int]]) -> list[str]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [f"it cannot be read as YAML ({type(exc).__name__}), so its pools were not checked"]
    if not missing(config, pools, {}):
        return []
    try:  # the file alone does not do it: limits set per pool in its storage may
        limits, note = explicit(), ""
    except Exception as exc:  # storage unreachable: warn from the file alone
        limits = {}
        note = f" (the per-pool limits in its storage could not be read: {type(exc).__name__})"
    return [problem + note for problem in missing(config, pools, limits)]


def storage_pool_limits() -> dict[str, int]:
    """The pool limits set explicitly in the instance's storage (not from a default)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        limits = instance.event_log_storage.get_pool_limits()
    return {p.name: p.limit for p in limits if not p.from_default}


def prepare(
    home: Path,
    pools: list[str] | None = None,
    explicit: Callable[[], Mapping[str, int]] = storage_pool_limits,
) -> InstanceFile:
    """Put the repo's ``dagster.yaml`` in ``home`` unless an operator's file is there (see the
    module docstring); ``pools``: the pools to check a kept file for (default: this backend's,
    ``pipelines.run_health.hub_pools``)."""
    path = home / FILE_NAME
    body = repo_file()
    absent = not path.exists() and not path.is_symlink()
    # (when another process puts a file there meanwhile, it is judged like any other below)
    if absent and _write(path, hub_copy(body), replace=False):
        return InstanceFile(path, "written")
    if path.is_file() and not path.is_symlink():
        content = path.read_bytes()
        if content == hub_copy(body):
            return InstanceFile(path, "current")
        if written_by_hub(content, body):
            _write(path, hub_copy(body))
            return InstanceFile(path, "refreshed")
    if pools is None:
        from pipelines.run_health import hub_pools

        pools = hub_pools()
    return InstanceFile(path, "kept", _check(path, pools, explicit))


def dagster_home() -> Path:
    """``DAGSTER_HOME`` (default ``$HUB_HOME/dagster``), owner-only, exported for children."""
    home = settings.private_dir(
        Path(os.environ.get("DAGSTER_HOME") or paths.hub_home() / "dagster")
    )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":  # `make`: the same rules as `hub demo` / `hub ui`
    settings.load()
    for line in prepare(dagster_home()).lines():
        print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
