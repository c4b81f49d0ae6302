"""The simulator's synthetic world (see ``model``): records generated from a seed, defects with
their truth, and a clock."""

from simulator.world.base import CITY_FIGURES
from simulator.world.model import World

__all__ = ["CITY_FIGURES", "World"]
