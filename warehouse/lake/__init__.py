"""The DuckLake backend of the warehouse (``HUB_WAREHOUSE_BACKEND=ducklake``): the same schemas
``core``, ``ops``, ``mart``, ``ref`` and ``raw`` in a DuckLake whose catalog is a PostgreSQL
database (``HUB_LAKE_CATALOG``) and whose data are Parquet files (``HUB_LAKE_DATA_PATH``).

Modules: ``extensions`` (the pinned DuckDB extensions, loaded offline), ``catalog`` (attach the
lake so that ``core.x`` resolves as on the DuckDB file), ``ddl`` (the migrations without what
DuckLake lacks; the keys are checked before COMMIT on both backends: ``warehouse.keys``),
``locks`` (PostgreSQL advisory locks: the lake's write lock and one per county) and ``retry`` (a merge retried whole on a
DuckLake commit conflict). ``docs/engineering/scale-out.md`` ("Backend differences") explains
the design.
"""
