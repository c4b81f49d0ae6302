"""Screenshots of the Dagster UI for docs/county-admins.md (run by hand, not in CI).

    .venv/bin/python scripts/screenshots.py            # writes docs/img/*.png
    .venv/bin/python scripts/screenshots.py --keep     # also keep the temp hub/dagster homes

What it does, all in a temporary HUB_HOME and DAGSTER_HOME (the repo's dagster.yaml):
1. starts the simulator in this process at test scale and syncs every county and the city with
   the jobs ``make demo`` runs (``sync_all_counties``, then ``sync_city``);
2. syncs 商南 once more against a "dirty" simulator (three defective records in ten), so the UI
   has a refused sync to show;
3. starts ``dagster dev`` on loopback (webserver and daemon, as ``make ui`` does), waits until
   the daemon has evaluated the freshness policies, and photographs the pages a county admin
   reads with headless Chromium, then shrinks each PNG with pngquant (if installed).

Needs Debian's ``chromium`` and ``fonts-noto-cjk`` (the Chinese labels render as boxes without
it); ``pngquant`` is optional:  apt-get install -y chromium fonts-noto-cjk pngquant
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from anywhere

from pipelines.cli import dagster_dev_command  # noqa: E402 - needs the path above

MAX_PNG_BYTES = 250_000
CJK_FONT_DIRS = ("/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/noto")

#: The county whose pages are photographed, and the one synced from a dirty platform.
COUNTY, REFUSED_COUNTY = "luonan", "shangnan"
#: A few rejected households, so the household's reject-reason table has rows to show (at the
#: default rate households carry almost no defect at test scale).
HOUSEHOLD_DEFECTS = {"negative_income": 0.01, "exit_before_identified": 0.01}
#: (file name, path in the UI, window size, milliseconds of virtual time to let the SPA render)
SHOTS = [
    ("catalog-group.png", f"/assets?asset-selection=group:{COUNTY}", "1400,760", 15000),
    ("household-overview.png", f"/assets/{COUNTY}/household", "1400,900", 15000),
    ("household-events.png", f"/assets/{COUNTY}/household?view=events", "1600,1000", 15000),
    (
        "household-checks.png",
        f"/assets/{COUNTY}/household?view=checks&checkDetail=no_new_conflicts",
        "1400,800",
        15000,
    ),
    ("automation.png", "/automation", "1400,620", 15000),
    ("refused-run.png", "/runs/{refused_run_id}", "1400,900", 15000),
]


STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {message}", flush=True)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("chromium not found: apt-get install -y chromium fonts-noto-cjk pngquant")


def require_cjk_fonts() -> None:
    has_cjk = any(Path(d).is_dir() and any(Path(d).glob("NotoSansCJK*")) for d in CJK_FONT_DIRS)
    if not has_cjk:
        sys.exit(
            "Chinese fonts missing (labels would render as boxes): apt-get install -y fonts-noto-cjk"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_homes(base: Path) -> None:
    """A fresh HUB_HOME and a DAGSTER_HOME holding the repo's dagster.yaml, for this process
    and everything it starts."""
    dagster_home = base / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["HUB_HOME"] = str(base / "hub")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ["HUB_PROFILE"] = "demo"  # simulated counties (base/settings.py)
    for key in ("HUB_WAREHOUSE", "HUB_SNAPSHOT", "HUB_PII_SNAPSHOT"):
        os.environ.pop(key, None)


def run_job(instance, job_factory, run_config: dict | None = None) -> str:
    """Run a job as ``make demo`` does (multiprocess executor); return its run id."""
    import dagster as dg

    with dg.execute_job(
        dg.reconstructable(job_factory), instance=instance, run_config=run_config or {}
    ) as result:
        say(f"{result.job_def.name}: {'succeeded' if result.success else 'failed'}")
        return result.run_id


def sync_city_like_make_demo(instance) -> None:
    from pipelines import jobs
    from seeds.registry import counties

    ops = {f"{c.slug}__landing": {"config": {"mode": "incremental"}} for c in counties()}
    run_job(instance, jobs.sync_all_counties_job, {"ops": ops})
    run_job(instance, jobs.sync_city_job)


def refused_sync(instance, scale: float, slug: str = REFUSED_COUNTY) -> str:
    """One county synced from a dirty copy of its platform: the merge refuses (reject rate over
    the threshold) and the run fails; return its run id."""
    from pipelines.definitions import defs
    from simulator import embedded

    dirty = embedded.start_in_thread(seed=7, scale=scale, defect_rate=0.3)
    saved = {k: os.environ.get(k) for k in embedded.env_for(dirty.url, [slug])}
    try:
        os.environ.update(embedded.env_for(dirty.url, [slug]))
        # full: an incremental sync after the first one holds too few records to refuse
        result = defs.resolve_job_def(f"sync_{slug}").execute_in_process(
            run_config={"ops": {f"{slug}__landing": {"config": {"mode": "full"}}}},
            instance=instance,
            raise_on_error=False,
        )
    finally:
        dirty.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    say(f"sync_{slug} from a dirty platform: {'succeeded' if result.success else 'refused'}")
    return result.run_id


class DagsterDev:
    """``dagster dev`` (webserver + daemon, what ``make ui`` runs) on loopback, in its own
    process group: it spawns a code server and the daemon, and SIGTERM to the group stops all."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = dagster_dev_command(self.port)
        # The freshness daemon evaluates every 30 s by default; 5 s spares the wait.
        env = {**os.environ, "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5"}
        self.process = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"dagster dev exited with {self.process.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        sys.exit(f"dagster dev did not answer within {timeout:.0f} s; see {self.log.name}")

    def graphql(self, query: str, **variables) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        response.raise_for_status()
        return response.json()["data"]

    def dismiss_community_dialog(self) -> None:
        """The "Join the Dagster community" dialog covers the first page a browser opens."""
        assert self.graphql("mutation { setNuxSeen }")["setNuxSeen"]

    def wait_for_freshness(self, slug: str, timeout: float = 90) -> str:
        """Wait until the daemon has evaluated the freshness of ``<slug>/household``."""
        query = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
            ... on AssetNode { freshnessStatusInfo { freshnessStatus } } } }"""
        deadline = time.monotonic() + timeout
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            node = self.graphql(query, key={"path": [slug, "household"]})["assetNodeOrError"]
            status = (node.get("freshnessStatusInfo") or {}).get("freshnessStatus", "UNKNOWN")
            if status != "UNKNOWN":
                break
            time.sleep(2)
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C: dagster dev's own clean stop
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.log.close()


def screenshot(browser: str, url: str, target: Path, window: str, budget_ms: int, profile: Path):
    """One headless Chromium screenshot; the virtual-time budget lets the SPA fetch and render."""
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--lang=zh-CN", f"--user-data-dir={profile}",
        f"--window-size={window}", f"--virtual-time-budget={budget_ms}",
        f"--screenshot={target}", url,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def shrink(png: Path) -> None:
    """Quantise to a 256-colour palette in place (UI screenshots lose nothing visible)."""
    if shutil.which("pngquant"):
        subprocess.run(
            ["pngquant", "--force", "--skip-if-larger", "--quality=60-90", "--speed=1",
             "--output", str(png), str(png)],
            check=False,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--scale", type=float, default=0.01, help="simulator scale (test scale)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes")
    args = parser.parse_args()

    browser = chromium()
    require_cjk_fonts()
    if not shutil.which("pngquant"):
        print("pngquant not found: PNGs are written unquantised (apt-get install -y pngquant)")
    args.out.mkdir(parents=True, exist_ok=True)

    base = Path(tempfile.mkdtemp(prefix="hub-screenshots-"))
    prepare_homes(base)
    import dagster as dg

    from simulator import embedded

    simulator = embedded.start_in_thread(seed=7, scale=args.scale, defect_rates=HOUSEHOLD_DEFECTS)
    os.environ.update(simulator.env())
    webserver = None
    try:
        with dg.DagsterInstance.get() as instance:
            say(f"syncing every county at scale {args.scale} into {base}")
            sync_city_like_make_demo(instance)
            refused_run_id = refused_sync(instance, args.scale)
        webserver = DagsterDev(base / "dagster-dev.log")
        webserver.wait_ready()
        webserver.dismiss_community_dialog()
        say(f"dagster dev on {webserver.url}; waiting for the daemon's freshness evaluation")
        say(f"freshness of {COUNTY}/household: {webserver.wait_for_freshness(COUNTY)}")
        for name, path, window, budget in SHOTS:
            target = args.out / name
            url = webserver.url + path.format(refused_run_id=refused_run_id)
            screenshot(browser, url, target, window, budget, base / "chromium")
            shrink(target)
            size = target.stat().st_size
            flag = "" if size <= MAX_PNG_BYTES else f"  (over {MAX_PNG_BYTES // 1000} KB!)"
            shown = target.relative_to(REPO) if target.is_relative_to(REPO) else target
            say(f"{shown}  {size // 1000} KB  ← {path}{flag}")
    finally:
        if webserver is not None:
            webserver.stop()
        simulator.stop()
        if args.keep:
            print(f"Kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
