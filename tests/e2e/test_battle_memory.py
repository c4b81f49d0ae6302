"""商州's landing step (battle v2) does not grow with the county (issue 13): a non-timing guard,
like ``test_landing_memory`` for 洛南.

商州 is landed and staged at a small and at a four times larger scale, each in a fresh
``python -m tests.e2e.landing_rss`` process (a forked child would inherit pytest's memory), with
small page groups (``HUB_STAGING_GROUP_ROWS``) so that the small run already holds full groups;
the growth of the step's peak RSS (VmHWM) is compared with the growth of what was landed.

What used to grow with the county (bench/profiles/landing.md, "every landing step ≤ 400 MB"):
the client's ``set`` of every key of an entity (to count the distinct keys across its offset
passes: 100+ bytes a key) and the households' heads, resolved by a polars group-by of every
member. Both are now out of core (``battle/keys.DistinctKeys``, ``StagedParts._heads``).
Measured when this was written (scale 0.3 → 1.5, 13.8 → 68.9 MB landed, load ~15): streaming,
+38 MB of peak for +52.5 MB landed (0.72 ×; +29/+30 MB at 0.3 → 1.2); the code before (main
55c9adc) +57 MB (1.09 ×; +42 MB at 0.3 → 1.2): the test fails there. Bound 0.9 ×, ~10 MB from
either. What is left of the growth: the landing's page list, the reduction's sinks. ~1.5 min
under load, less on an idle machine.
"""

from __future__ import annotations

import pytest

from tests.e2e.landing_rss import landing_growth

SMALL, LARGE = 0.3, 1.5
#: the peak may grow by at most this share of the growth in landed bytes
BOUND = 0.9

pytestmark = pytest.mark.slow


def test_battle_landing_peak_memory_does_not_grow_with_the_county(monkeypatch, tmp_path):
    grown = landing_growth(
        monkeypatch, tmp_path, "shangzhou", (SMALL, LARGE), HUB_STAGING_GROUP_ROWS="5000"
    )
    small, large, figures = grown.small, grown.large, grown.figures
    landed_growth, peak_growth = grown.landed_mb, grown.peak_mb
    # the larger county really is larger: otherwise the comparison proves nothing
    assert landed_growth > 30, figures
    print(f"shangzhou: +{peak_growth:.0f} MB peak for +{landed_growth:.1f} MB landed: {figures}")
    assert peak_growth < BOUND * landed_growth, (
        f"商州's landing step's peak memory grows with the county: {small['peak_mb']:.0f} MB at "
        f"scale {SMALL}, {large['peak_mb']:.0f} MB at scale {LARGE}, +{peak_growth:.0f} MB for "
        f"+{landed_growth:.0f} MB landed (bound {BOUND} ×); are the keys or the heads held in "
        f"memory again? {figures}"
    )
