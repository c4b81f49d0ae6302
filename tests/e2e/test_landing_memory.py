"""The landing step's memory does not grow with the county (issue 13): a non-timing guard.

洛南 is landed and staged at scale 0.3 and at scale 1.2 (four times the records: 18 MB and 74 MB
of landed JSON), each in a fresh ``python -m`` process (a forked child would inherit pytest's
memory), and the growth of the step's peak RSS (VmHWM) between the two is compared with the
growth of what was landed.

Streaming holds one page group (here one bigdata page of 5,000 records,
``HUB_STAGING_GROUP_ROWS``) plus DuckDB's capped per-key reduction at a time; what still grows
is the per-key winners (8 bytes a key) and the reduction until it spills. Measured when this
was written (bench/profiles/landing.md): streaming, +29 MB of peak for +55 MB landed (0.53 ×);
the page loop holding each entity whole (``PageGroups`` never flushing before the end, the
rest streaming) +78 MB (1.4 ×); the code before issue 13 (everything whole) grew about 3 × the
landed bytes (448 → 827 MB from scale 1 to 3 for +117 MB landed). Bound: 0.9 ×, between
streaming and the mildest regression, with ~20 MB of room either way: a memory figure, not a
timing, so it does not depend on the machine's load.
"""

from __future__ import annotations

import pytest

from tests.e2e.landing_rss import landing_growth

SMALL, LARGE = 0.3, 1.2
#: the peak may grow by at most this share of the growth in landed bytes
BOUND = 0.9

pytestmark = pytest.mark.slow


def test_landing_peak_memory_does_not_grow_with_the_county(monkeypatch, tmp_path):
    # one bigdata page (5,000 records) a group: at scale 0.3 the groups are already full, so
    # both runs hold the same number of records at a time when streaming works
    grown = landing_growth(
        monkeypatch, tmp_path, "luonan", (SMALL, LARGE), HUB_STAGING_GROUP_ROWS="5000"
    )
    small, large, figures = grown.small, grown.large, grown.figures
    landed_growth, peak_growth = grown.landed_mb, grown.peak_mb
    # the larger county really is larger: otherwise the comparison proves nothing
    assert landed_growth > 40, figures
    assert peak_growth < BOUND * landed_growth, (
        f"the landing step's peak memory grows with the county: {small['peak_mb']:.0f} MB at "
        f"scale {SMALL}, {large['peak_mb']:.0f} MB at scale {LARGE}, +{peak_growth:.0f} MB for "
        f"+{landed_growth:.0f} MB landed (bound {BOUND} ×); is an entity held whole again? "
        f"{figures}"
    )
