"""DuckLake for development and tests: a local PostgreSQL server for the catalog
(:mod:`pipelines.lake.postgres`, ``make postgres``). The backend itself (attaching the lake,
loading the pinned extensions offline, its locks) is ``warehouse.lake``. See
``docs/engineering/scale-out.md``.
"""
