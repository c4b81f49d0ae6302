"""The city's reference data and its loaders: the lowest floor of the hub.

The CSV files beside this module are public facts and city decisions (the county registry, the
code tables, the NBS divisions with their source, the report's figures); the modules read them.
Everything else (``schemas``, ``simulator``, ``pipelines``) may import this package, and it
imports none of them, so it ships as package data with the code.
"""

from __future__ import annotations

from pathlib import Path

SEEDS = Path(__file__).resolve().parent
#: Real NBS division codes of Shangluo (2023 edition), with their source in SOURCE.md.
DIVISIONS = SEEDS / "divisions"
