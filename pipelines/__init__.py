"""Dagster code of the Shangluo poverty data hub."""
