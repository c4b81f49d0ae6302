"""洛南's eight listings (shared by the dlt run and the fetch floor, which run in different
venvs: this module imports nothing)."""

ENDPOINTS = (
    "regions",
    "households",
    "members",
    "measures",
    "loans",
    "projects",
    "cadres",
    "household-cadres",
)
