"""DuckLake: the scale-out warehouse backend (a PostgreSQL catalog, Parquet data files).

This package holds what the backend needs beside DuckDB itself: loading the pinned extensions
offline (:mod:`pipelines.lake.extensions`) and a local PostgreSQL for development and tests
(:mod:`pipelines.lake.postgres`). See ``docs/engineering/scale-out.md``.
"""
