"""The merge step of one landed sync, alone in a fresh process, reporting its own memory.

    python -m tests.memory.merge_step <landed.json>

Runs ``pipelines.sync.merge`` (verify, diff, validate, merge, checks of the staged files) on a
``Landed`` written as JSON by the test, then prints one JSON line: ``rss_after_imports_mb``
(``VmRSS`` once the merge's modules are imported, before any work) and ``peak_rss_mb``
(``VmHWM``: the kernel's high-water mark of this process, so no peak between samples is lost),
with the records fetched. A fresh interpreter (``subprocess``, exec) holds nothing of the
test's simulator: the peak is the merge step's own.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


class RetryCounter(logging.Handler):
    """Counts the merge's "ran out of DuckDB memory; once more at ..." warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "ran out of DuckDB memory" in record.getMessage()


def main(landed_json: str) -> None:
    from pipelines import sync
    from pipelines.sync import Landed
    from seeds.registry import county

    landed = Landed(**json.loads(Path(landed_json).read_text()))
    retries = RetryCounter()
    logging.getLogger("warehouse").addHandler(retries)
    baseline = status_mb("VmRSS")
    merged = sync.merge(county(landed.county_code), landed)
    fetched = sum(c.get("fetched", 0) for c in merged.counts.values())
    print(
        json.dumps(
            {
                "rss_after_imports_mb": round(baseline, 1),
                "peak_rss_mb": round(status_mb("VmHWM"), 1),
                "fetched": fetched,
                # ~60 MB of RSS the merge step does without (warehouse.batch.load_frame)
                "pyarrow_imported": "pyarrow" in sys.modules,
                # merges redone at the larger limit after DuckDB ran out of memory
                "memory_retries": retries.count,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
