"""The simulator as the hub's demo connection source (``pipelines.connections``).

Registered in ``pyproject.toml`` under the entry point group ``shangluo_hub.demo_source``, so
the hub finds it in the demo profile without importing the simulator: the arrow points from
the simulator to the hub's interface, never back. A county without settings is then served by
the bundled simulator, started detached on loopback on first use and shared by every process of
the hub home (``<HUB_HOME>/simulator``).
"""

from __future__ import annotations

import os
from pathlib import Path

from simulator import embedded


class SimulatorSource:
    name = "simulator"

    def start(self, state_dir: Path) -> dict:
        return embedded.ensure_running(
            state_dir,
            seed=int(os.environ.get("HUB_SIM_SEED", "7")),
            scale=float(os.environ.get("HUB_SIM_SCALE", "1.0")),
        )

    def settings(self, county, state_dir: Path) -> dict[str, str]:
        info = self.start(state_dir)
        return {"url": f"{info['url']}/{county.slug}", **embedded.credentials(county.slug)}


source = SimulatorSource()
