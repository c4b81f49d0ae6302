"""The hub's settings: the ONE place that reads the environment and ``.env``, picks the profile and
checks the PII key. Every entry point calls :func:`load` first (each ``hub`` command, the Dagster
definitions and with them every schedule, sensor and step process).

Where settings come from, first match wins:

1. the process environment;
2. a git-ignored ``.env`` file (``HUB_ENV_FILE``, default ``<repo>/.env``), loaded into the
   environment without overriding anything already there, so child processes (Dagster steps, the
   UI's code server) see the same values.

Profiles (``HUB_PROFILE``):

* ``production`` (the default: a deployment never has to say so) — a county is synced only from
  the platform its ``HUB_<SLUG>_URL/_KEY/_SECRET`` name; a county without them is *not
  configured* and is never simulated. ``HUB_PII_KEY`` must be a real key (:func:`pii_key`).
* ``demo`` — chosen explicitly (``make demo``, ``make ui``, ``hub demo``): counties without
  settings are served by the bundled simulator, and without ``HUB_PII_KEY`` person_key uses the
  published development key (with a warning).

The warehouse records the profile that created it and refuses to be written by the other one
(``warehouse.connect``), so simulated people never reach a real warehouse.

File modes: :func:`load` sets the process umask to ``077``, so everything the hub (and the
DuckDB, Dagster and simulator processes it starts) creates is owner-only: directories 0700,
files 0600.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dotenv import dotenv_values

from base.errors import SourceError
from base.paths import REPO, hub_home

PROFILES = ("production", "demo")
DEFAULT_PROFILE = "production"

#: person_key's development key, the UTF-8 bytes of a published sentence (hex-encoded, as
#: HUB_PII_KEY is). Pseudonyms made with it protect nothing: anyone can recompute them from a
#: guessed ID number. Allowed in the demo profile only.
DEV_PII_KEY = b"shangluo-hub-development-pii-key-not-for-production".hex()
#: The shortest accepted key: 32 bytes = 64 hex digits (HMAC-SHA256's own output size).
MIN_PII_KEY_BYTES = 32
PII_KEY_HELP = (
    "HUB_PII_KEY is the secret key of the person_key pseudonym (HMAC-SHA256 of the ID number): "
    f"at least {MIN_PII_KEY_BYTES} random bytes written as hex "
    f"({2 * MIN_PII_KEY_BYTES}+ hex digits). Generate one with "
    '`python3 -c "import secrets; print(secrets.token_hex(32))"`, put it in .env or the '
    "environment, keep it secret and never change it (changing it changes every person_key)."
)

#: Owner-only modes of everything the hub writes under HUB_HOME.
PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600  # files keep no execute bit: the hub writes data, not programs


class SettingsError(RuntimeError):
    """The configuration is unusable; the message says what to set and where."""


class NotConfigured(SourceError):
    """A county without connection settings in the production profile: never simulated."""

    def __init__(self, county: object) -> None:
        prefix = getattr(county, "env_prefix", "HUB_<SLUG>_")
        super().__init__(
            county,
            f"{prefix}URL",
            f"not configured: set {prefix}URL, {prefix}KEY and {prefix}SECRET in the environment "
            "or .env to sync this county (the simulator serves only the demo profile, "
            "HUB_PROFILE=demo)",
        )


_loaded: dict[str, str] | None = None
_loaded_from: Path | None = None


def env_file() -> Path:
    """The ``.env`` file read by :func:`load`: ``HUB_ENV_FILE``, else ``<repo>/.env``."""
    return Path(os.environ.get("HUB_ENV_FILE") or REPO / ".env")


def load() -> dict[str, str]:
    """Read ``.env`` into the environment (the environment wins), set the owner-only umask and
    check the profile's name. Returns what ``.env`` added. Cheap and idempotent: every entry
    point calls it first."""
    global _loaded, _loaded_from
    os.umask(PRIVATE_UMASK)
    source = env_file()
    if _loaded is None or _loaded_from != source:
        added: dict[str, str] = {}
        if source.is_file():
            for key, value in dotenv_values(source).items():
                if value is not None and key not in os.environ:
                    os.environ[key] = value
                    added[key] = value
        _loaded, _loaded_from = added, source
    profile()  # an unknown profile fails here, before anything runs
    return dict(_loaded)


def profile() -> str:
    """``production`` (default) or ``demo``, from ``HUB_PROFILE``."""
    value = (os.environ.get("HUB_PROFILE") or DEFAULT_PROFILE).strip().lower()
    if value not in PROFILES:
        raise SettingsError(
            f"HUB_PROFILE={value!r} is not a profile: use 'production' (the default) or 'demo'"
        )
    return value


def is_demo() -> bool:
    return profile() == "demo"


def use_demo_profile() -> None:
    """Select the demo profile for this process and its children (``hub demo``). Refused when
    ``production`` was chosen explicitly: a production deployment never runs the simulator."""
    if (os.environ.get("HUB_PROFILE") or "").strip().lower() == "production":
        raise SettingsError(
            "hub demo runs the demo profile (simulated counties), but HUB_PROFILE=production is "
            f"set (environment or {env_file()}): run the demo from another checkout or HUB_HOME"
        )
    os.environ["HUB_PROFILE"] = "demo"


def county_configured(county: object) -> bool:
    """Whether ``HUB_<SLUG>_URL`` is set for ``county`` (environment or .env)."""
    return bool(os.environ.get(f"{county.env_prefix}URL"))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# the PII key


def _parse_pii_key(raw: str) -> bytes:
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError:
        raise SettingsError(
            "HUB_PII_KEY is not hex-encoded. " + PII_KEY_HELP
        ) from None  # the value itself is never shown
    return key


def pii_key_problem() -> str | None:
    """Why this process may not compute person_key with the configured key, or None.

    Production: the key must be set, hex, at least 32 bytes and not the development key. Demo:
    unset means the development key; a key that is set must still be valid hex."""
    raw = os.environ.get("HUB_PII_KEY")
    if not raw:
        if is_demo():
            return None
        return "HUB_PII_KEY is not set (production profile). " + PII_KEY_HELP
    try:
        key = _parse_pii_key(raw)
    except SettingsError as exc:
        return str(exc)
    if is_demo():
        return None
    if key == bytes.fromhex(DEV_PII_KEY):
        return (
            "HUB_PII_KEY is the published development key, which protects nothing "
            "(production profile). " + PII_KEY_HELP
        )
    if len(key) < MIN_PII_KEY_BYTES:
        return (
            f"HUB_PII_KEY is {len(key)} bytes, shorter than {MIN_PII_KEY_BYTES} "
            "(production profile). " + PII_KEY_HELP
        )
    return None


def check_pii_key() -> None:
    """Fail start-up with a clear message when the PII key is unusable in this profile."""
    problem = pii_key_problem()
    if problem:
        raise SettingsError(problem)


def pii_key() -> bytes:
    """The key bytes of person_key: ``HUB_PII_KEY`` (hex), or the development key in the demo
    profile when it is unset. Raises :class:`SettingsError` for a key the profile refuses."""
    check_pii_key()
    raw = os.environ.get("HUB_PII_KEY")
    return _parse_pii_key(raw) if raw else bytes.fromhex(DEV_PII_KEY)


def uses_development_key() -> bool:
    return not os.environ.get("HUB_PII_KEY")


# --------------------------------------------------------------------------------------------
# file modes


def snapshot_mode() -> int:
    """File mode of the analyst snapshot: ``HUB_SNAPSHOT_MODE`` (octal), default 0600. 0640 lets
    the analysts' group read it when ``HUB_SNAPSHOT`` points at a directory that group can
    enter; nobody but the owner may ever write it. (The PII snapshot is always 0600.)"""
    raw = os.environ.get("HUB_SNAPSHOT_MODE") or "0600"
    try:
        mode = int(raw, 8)
    except ValueError:
        mode = -1
    if mode < 0 or mode & ~0o644 or mode & 0o600 != 0o600:
        raise SettingsError(
            f"HUB_SNAPSHOT_MODE={raw!r}: use an octal file mode that the owner can read and write "
            "and nobody else can write, e.g. 0600 (default) or 0640"
        )
    return mode


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only, and make it owner-only if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    _chmod_if_mine(path, PRIVATE_DIR)
    return path


def secure_home() -> Path:
    """Make ``HUB_HOME`` and what is already in it owner-only (a home created before the hub set
    its umask, or by another tool, may be world-readable). One ``lstat`` per entry: cheap, as
    retention keeps the landing area to weeks."""
    home = hub_home()
    if not home.exists():  # created later, under the owner-only umask
        return home
    for root, dirs, files in os.walk(home):
        _chmod_if_mine(Path(root), PRIVATE_DIR)
        for name in files:
            _chmod_if_mine(Path(root) / name, PRIVATE_FILE)
        for name in dirs:
            _chmod_if_mine(Path(root) / name, PRIVATE_DIR)
    return home


def _chmod_if_mine(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
        return
    if stat.S_IMODE(st.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(st.st_mode) & mode)


def connection_state(county: object) -> str:
    """``configured`` (its own settings), ``simulated`` (demo profile, no settings) or
    ``not configured`` (production profile, no settings: never synced, never simulated)."""
    load()
    if county_configured(county):
        return "configured"
    return "simulated" if is_demo() else "not configured"


# --------------------------------------------------------------------------------------------
# the warehouse backend (issue 15; docs/engineering/scale-out.md)

#: ``duckdb``: one DuckDB file, one writer at a time (the default). ``ducklake``: a DuckLake
#: catalog in PostgreSQL (``HUB_LAKE_CATALOG``) with Parquet data files (``HUB_LAKE_DATA_PATH``);
#: counties merge from many processes.
BACKENDS = ("duckdb", "ducklake")
DEFAULT_BACKEND = "duckdb"


def warehouse_backend() -> str:
    """``duckdb`` (default) or ``ducklake``, from ``HUB_WAREHOUSE_BACKEND``."""
    value = (os.environ.get("HUB_WAREHOUSE_BACKEND") or DEFAULT_BACKEND).strip().lower()
    if value not in BACKENDS:
        raise SettingsError(
            f"HUB_WAREHOUSE_BACKEND={value!r} is not a backend: use 'duckdb' (the default, one "
            "DuckDB file) or 'ducklake' (a PostgreSQL catalog, see HUB_LAKE_CATALOG)"
        )
    return value


def is_lake() -> bool:
    return warehouse_backend() == "ducklake"


def lake_catalog() -> str:
    """The libpq connection string of the DuckLake catalog database (``HUB_LAKE_CATALOG``)."""
    value = (os.environ.get("HUB_LAKE_CATALOG") or "").strip()
    if not value:
        raise SettingsError(
            "HUB_WAREHOUSE_BACKEND=ducklake needs HUB_LAKE_CATALOG, the libpq connection string "
            "of the catalog database, e.g. 'host=127.0.0.1 port=5432 dbname=hub_lake user=hub' "
            "(`make postgres` starts a local server and prints one); keep any password in "
            "PGPASSWORD or ~/.pgpass, not in the string"
        )
    return value


def lake_data_path() -> str:
    """Where the lake's Parquet files go: ``HUB_LAKE_DATA_PATH`` (a directory or an object-store
    URL), default ``$HUB_HOME/lake/data``. Ends with a ``/``, as DuckLake expects."""
    value = (os.environ.get("HUB_LAKE_DATA_PATH") or "").strip() or str(
        hub_home() / "lake" / "data"
    )
    return value if value.endswith("/") else value + "/"


def redact_dsn(dsn: str) -> str:
    """A connection string fit for logs and errors: any ``password=...`` removed."""
    import re

    return re.sub(r"password\s*=\s*('[^']*'|\S+)", "password=***", dsn, flags=re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# the analyst lake: the de-identified tier of the DuckLake backend (warehouse.lake_publish)

#: The analyst lake's catalog database is the main one's name with this suffix, on the same
#: server, unless HUB_ANALYST_LAKE_CATALOG names another.
ANALYST_CATALOG_SUFFIX = "_analyst"


def analyst_lake_catalog() -> str:
    """libpq connection string of the analyst lake's catalog (``HUB_ANALYST_LAKE_CATALOG``):
    by default the main catalog's server with ``dbname=<main>_analyst``. Analysts get a
    PostgreSQL role that can read this database and not the main one."""
    value = (os.environ.get("HUB_ANALYST_LAKE_CATALOG") or "").strip()
    if value:
        return value
    import re

    main = lake_catalog()
    found = re.search(r"dbname\s*=\s*(\S+)", main)
    if not found:
        raise SettingsError(
            "HUB_LAKE_CATALOG names no dbname=..., so the analyst lake's catalog cannot be "
            "derived from it: set HUB_ANALYST_LAKE_CATALOG"
        )
    name = found.group(1).strip("'") + ANALYST_CATALOG_SUFFIX
    return main[: found.start()] + f"dbname={name}" + main[found.end() :]


def analyst_lake_data_path() -> str:
    """Where the analyst lake's Parquet files go: ``HUB_ANALYST_LAKE_DATA_PATH``, default
    ``$HUB_HOME/analyst-lake/data`` — never inside the main lake's data path. Ends with ``/``."""
    value = (os.environ.get("HUB_ANALYST_LAKE_DATA_PATH") or "").strip()
    value = value or str(hub_home() / "analyst-lake" / "data")
    value = value if value.endswith("/") else value + "/"
    main = lake_data_path()
    ours, theirs = _comparable(value), _comparable(main)
    if ours.startswith(theirs) or theirs.startswith(ours):
        raise SettingsError(
            f"HUB_ANALYST_LAKE_DATA_PATH={value!r} overlaps the main lake's data path {main!r}: "
            "whoever can read the analyst files would read names and ID numbers"
        )
    return value


def _comparable(data_path: str) -> str:
    """A data path as the overlap check compares it: an object-store URL with its scheme and
    bucket in lower case (``S3://Hub-Lake/x/`` is ``s3://hub-lake/x/``), a local directory
    absolute with symbolic links resolved (``var/lake/../lake/data`` is the same directory)."""
    if "://" in data_path:
        scheme, _, rest = data_path.partition("://")
        bucket, slash, key = rest.partition("/")
        return f"{scheme.lower()}://{bucket.lower()}{slash}{key}"
    return os.path.realpath(data_path).rstrip("/") + "/"


def analyst_lake_keep_days() -> int:
    """How many days of analyst-lake publishes stay readable by time travel
    (``HUB_ANALYST_LAKE_KEEP_DAYS``, default 90); older ones and the files only they used are
    removed at publish time. The latest publish always stays."""
    raw = (os.environ.get("HUB_ANALYST_LAKE_KEEP_DAYS") or "90").strip()
    if not raw.isdigit():
        raise SettingsError(
            f"HUB_ANALYST_LAKE_KEEP_DAYS={raw!r}: use a whole number of days (0 keeps only "
            "the latest publish)"
        )
    return int(raw)


# --------------------------------------------------------------------------------------------
# DuckDB's bound per warehouse-writing step (warehouse/duckdb_bounds.py: MERGE, CITY)


def duckdb_memory_limit(step: str, default: str) -> str:
    """``HUB_<STEP>_MEMORY_LIMIT`` (``HUB_MERGE_MEMORY_LIMIT``, ``HUB_CITY_MEMORY_LIMIT``):
    DuckDB's memory for that step's connections in DuckDB's units (``128MB``, ``1GB``)."""
    return (os.environ.get(f"HUB_{step}_MEMORY_LIMIT") or "").strip() or default


def duckdb_threads(step: str, default: int) -> int:
    """``HUB_<STEP>_THREADS`` (``HUB_MERGE_THREADS``, ``HUB_CITY_THREADS``): DuckDB threads of
    that step's connections, a whole number of at least 1."""
    name = f"HUB_{step}_THREADS"
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r}: use a whole number of threads, 1 or more")
    return int(raw)


def merge_touch_rows(default: int) -> int:
    """``HUB_MERGE_TOUCH_ROWS``: unchanged rows stamped per transaction after a merge's COMMIT
    (warehouse/touch.py), a whole number of at least 1."""
    return _rows_setting("HUB_MERGE_TOUCH_ROWS", default)


def merge_shared_key_rows(default: int) -> int:
    """``HUB_MERGE_SHARED_KEY_ROWS``: rows per piece of the merge's search for person_keys two
    person_nos share (warehouse/shared_keys.py), a whole number of at least 1."""
    return _rows_setting("HUB_MERGE_SHARED_KEY_ROWS", default)


def _rows_setting(name: str, default: int) -> int:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r}: use a whole number of rows, 1 or more")
    return int(raw)


# --------------------------------------------------------------------------------------------
# object storage for the lake's data path (HUB_LAKE_DATA_PATH=s3://bucket/prefix/): any store
# with the S3 API (the provincial cloud's OSS/OBS, MinIO), read by DuckDB's httpfs extension


class LakeS3:
    """S3 settings of a data path: the store, one key, and ``prefix``, the settings they came
    from (``HUB_LAKE_S3_`` or ``HUB_ANALYST_LAKE_S3_``). The secret is never shown (``repr``
    hides it)."""

    __slots__ = ("endpoint", "key_id", "prefix", "region", "secret", "url_style", "use_ssl")

    def __init__(
        self, endpoint, key_id, secret, region, url_style, use_ssl, prefix="HUB_LAKE_S3_"
    ) -> None:
        self.endpoint, self.key_id, self.secret = endpoint, key_id, secret
        self.region, self.url_style, self.use_ssl = region, url_style, use_ssl
        self.prefix = prefix

    def __repr__(self) -> str:
        return (
            f"LakeS3(endpoint={self.endpoint!r}, key_id={self.key_id!r}, secret='***', "
            f"region={self.region!r}, url_style={self.url_style!r}, use_ssl={self.use_ssl}, "
            f"prefix={self.prefix!r})"
        )


def _s3(prefix: str, fallback: str | None, needed_for: str) -> LakeS3:
    """The S3 settings ``<prefix>KEY_ID``/``SECRET`` (required) and ``ENDPOINT``, ``REGION``,
    ``URL_STYLE``, ``USE_SSL`` (each from ``<fallback>`` when unset under ``prefix``)."""

    def get(name: str, default: str = "") -> str:
        value = (os.environ.get(prefix + name) or "").strip()
        if not value and fallback:
            value = (os.environ.get(fallback + name) or "").strip()
        return value or default

    key_id, secret = (os.environ.get(prefix + n, "").strip() for n in ("KEY_ID", "SECRET"))
    if not key_id or not secret:
        store = f"{fallback or prefix}ENDPOINT"
        raise SettingsError(
            f"{needed_for} is on object storage: set {prefix}KEY_ID and {prefix}SECRET (in "
            f".env, owner-only), and {store} unless the store is AWS itself"
        )
    url_style = get("URL_STYLE", "vhost").lower()
    use_ssl = get("USE_SSL", "true").lower()
    if url_style not in ("vhost", "path") or use_ssl not in ("true", "false"):
        raise SettingsError(
            f"{prefix}URL_STYLE must be 'vhost' or 'path' and {prefix}USE_SSL 'true' or "
            f"'false' (got {url_style!r}, {use_ssl!r})"
        )
    return LakeS3(
        get("ENDPOINT"), key_id, secret, get("REGION", "us-east-1"), url_style,
        use_ssl == "true", prefix,
    )  # fmt: skip


def lake_s3(needed_for: str | None = None) -> LakeS3:
    """The hub's key, for every write to object storage: the main lake's data path, and the
    analyst lake's when the city step publishes it (``needed_for`` names that path in the
    message). ``HUB_LAKE_S3_ENDPOINT`` (host[:port]; empty: AWS itself), ``HUB_LAKE_S3_KEY_ID``
    and ``HUB_LAKE_S3_SECRET`` (both required), ``HUB_LAKE_S3_REGION`` (default ``us-east-1``),
    ``HUB_LAKE_S3_URL_STYLE`` (``vhost``, the default, or ``path``: MinIO and most on-premises
    stores), ``HUB_LAKE_S3_USE_SSL`` (``true``, the default, or ``false`` for plain HTTP)."""
    return _s3("HUB_LAKE_S3_", None, needed_for or f"HUB_LAKE_DATA_PATH={lake_data_path()}")


def analyst_lake_s3() -> LakeS3:
    """The analysts' key, for reading the analyst lake on object storage (``hub sql``): its own
    ``HUB_ANALYST_LAKE_S3_KEY_ID`` / ``HUB_ANALYST_LAKE_S3_SECRET`` (required; a read-only key
    whose policy allows the analyst lake's prefix only), never the hub's; the store's
    ``HUB_ANALYST_LAKE_S3_ENDPOINT`` / ``_REGION`` / ``_URL_STYLE`` / ``_USE_SSL`` default to
    the ``HUB_LAKE_S3_*`` ones (the same store)."""
    path = analyst_lake_data_path()
    s3 = _s3("HUB_ANALYST_LAKE_S3_", "HUB_LAKE_S3_", f"HUB_ANALYST_LAKE_DATA_PATH={path}")
    if s3.key_id == (os.environ.get("HUB_LAKE_S3_KEY_ID") or "").strip():
        raise SettingsError(
            "HUB_ANALYST_LAKE_S3_KEY_ID is the hub's own key (HUB_LAKE_S3_KEY_ID), which can "
            f"write both lakes: give the analysts a separate key that may only read {path}"
        )
    return s3
