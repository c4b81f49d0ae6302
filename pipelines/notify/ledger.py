"""What was notified: one notification per key ever, and repeats of one problem rate-limited.

``var/state/notify.json`` (under ``HUB_HOME``), updated under an exclusive file lock, because the
steps of a run, the run-failure sensor and ``hub sync`` may all notify at once. A repeat of the
same signature within ``HUB_NOTIFY_REPEAT_MINUTES`` (default 360: an hourly schedule failing
all night sends one message, then one every six hours) is counted, not sent; the next message
sent for it says how many were left out.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from base import paths

DEFAULT_REPEAT_MINUTES = 360
KEEP_KEYS = timedelta(days=30)


@dataclass
class Decision:
    send: bool
    why: str = ""
    suppressed: int = 0  # repeats left out before this one


def repeat_window() -> timedelta:
    return timedelta(
        minutes=float(os.environ.get("HUB_NOTIFY_REPEAT_MINUTES") or DEFAULT_REPEAT_MINUTES)
    )


class Ledger:
    def __init__(self, path=None) -> None:
        self.path = path or paths.hub_home() / "state" / "notify.json"

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    state = json.loads(self.path.read_text(encoding="utf-8"))
                except (FileNotFoundError, ValueError):
                    state = {}
                state.setdefault("keys", {})
                state.setdefault("signatures", {})
                yield state
                tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
                tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def admit(self, key: str, signature: str, now: datetime) -> Decision:
        """Record ``key`` and decide whether to send (see the module docstring)."""
        with self._locked() as state:
            keys, sigs = state["keys"], state["signatures"]
            for k, at in list(keys.items()):
                if now - datetime.fromisoformat(at) > KEEP_KEYS:
                    del keys[k]
            if key in keys:
                return Decision(False, f"already notified ({key})")
            keys[key] = now.isoformat()
            last = sigs.get(signature)
            if last and now - datetime.fromisoformat(last["at"]) < repeat_window():
                last["suppressed"] = int(last.get("suppressed", 0)) + 1
                return Decision(False, f"repeat within {repeat_window()} (rate limit)")
            suppressed = int(last.get("suppressed", 0)) if last else 0
            sigs[signature] = {"at": now.isoformat(), "suppressed": 0}
            return Decision(True, suppressed=suppressed)
