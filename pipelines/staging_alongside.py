"""Staging while the landing runs (issue 13): a normaliser that reads a sync's pages once, in
order (``manifest.pages``), is given each page as soon as it is landed, on a thread beside the
fetch, instead of after the last one. 商州's landing (battle v2: every sync reads ~900 pages)
waited for its answers for seconds and then normalised for seconds; now the two overlap.

The outcome is the one of landing, then staging: the same pages, read back from disk and
verified against their sha256 as they always were (``LandedPage.body``), in the same order, by
the same normaliser, into the same ``staged/`` directory. Errors keep their order too:

- the landing fails: the staging stops at its next page, its ``staged/`` directory is removed
  (a failed landing has none, as before) and the landing's error is raised;
- the staging fails (a malformed page): the landing carries on to its end, complete as before,
  and then the staging's error is raised, exactly as ``stage`` after ``land`` raised it.

A normaliser opts in with ``normalise.stages_while_landing = True`` (the battle connector's).
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pipelines.landing import MANIFEST, LandedPage

_END, _STOP = object(), object()


class LandingStopped(Exception):
    """The landing failed: the staging alongside it stops (never raised to the caller)."""


class LivePages:
    """A landing's pages as they are written: what the normaliser reads as ``manifest.pages``
    (once, in order); it waits for the next page, ends with the landing, and raises
    :class:`LandingStopped` when the landing failed."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, item: object) -> None:
        self._queue.put(item)

    @property
    def pages(self) -> Iterator[LandedPage]:
        while (item := self._queue.get()) is not _END:
            if item is _STOP:
                raise LandingStopped
            yield item


class StagingAlongside:
    """Runs ``stage(manifest_path, live_pages) -> staged directory`` on a thread, started by the
    first landed page (the landing directory exists from then on)."""

    def __init__(self, stage: Callable[[Path, LivePages], Path]) -> None:
        self.stage = stage
        self.live = LivePages()
        self._thread: threading.Thread | None = None
        self._target: Path | None = None
        self._staged: Path | None = None
        self._error: BaseException | None = None

    def add(self, page: LandedPage) -> None:
        """A page was landed (``landing.land(on_page=...)``)."""
        if self._thread is None:
            manifest_path = page.path.parent / MANIFEST
            self._target = manifest_path.parent / "staged"
            self._thread = threading.Thread(
                target=self._run, args=(manifest_path,), name="staging-alongside", daemon=True
            )
            self._thread.start()
        if self._error is None:  # a staging that failed reads no further
            self.live.put(page)

    def _run(self, manifest_path: Path) -> None:
        try:
            self._staged = self.stage(manifest_path, self.live)
        except LandingStopped:
            pass
        except BaseException as exc:  # raised by finish(), once the landing is complete
            self._error = exc

    def finish(self) -> Path | None:
        """The landing completed: the staged directory once the staging is done (None if no
        page was landed), or the staging's error."""
        if self._thread is None:
            return None
        self.live.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._staged

    def abandon(self) -> None:
        """The landing failed: stop the staging, wait for it and remove what it wrote."""
        if self._thread is None:
            return
        self.live.put(_STOP)
        self._thread.join()
        if self._target is not None:
            shutil.rmtree(self._target, ignore_errors=True)
