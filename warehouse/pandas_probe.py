"""DuckDB's Python client looks for pandas at every statement with parameters.

Binding a ``$parameter`` (and a few other calls) makes the client try ``import pandas`` twice, to
see whether a value is a pandas object. Without pandas (the hub does not install it) every try
searches the whole ``sys.path`` again and fails: ~0.1-0.2 ms a statement, a few hundred
statements a merge step, ~0.05-0.1 CPU-s of a small incremental merge that costs ~1 CPU-s
(bench/profiles/merge.md, "The fixed cost of a small merge").

:func:`skip_pandas_probe` records pandas as absent in ``sys.modules`` (``None``) when it is not
installed: ``import pandas`` then fails at once with the same ``ModuleNotFoundError``, and
``importlib.util.find_spec("pandas")`` still says None. Where pandas is installed (or already
imported) nothing changes.
"""

from __future__ import annotations

import importlib.util
import sys


def skip_pandas_probe() -> bool:
    """Mark pandas absent in ``sys.modules`` when it is not installed; True when marked."""
    if "pandas" in sys.modules or importlib.util.find_spec("pandas") is not None:
        return False
    sys.modules["pandas"] = None  # type: ignore[assignment]  (the import system's "absent")
    return True
