"""Memory and open files of a running stack, sampled through a load run: whether the gateway (or anything else)
grows under a soak or an overload. Processes are grouped by component (gateway, tier-small, redis-server, ...)
as loadtest.processes names them; the stack is every descendant of its `tierserve serve` process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from loadtest.processes import component


@dataclass
class Sample:
    at_s: float
    rss_mib: dict[str, float]
    open_files: dict[str, int]


def sample(root: psutil.Process, since: float) -> Sample:
    rss: dict[str, float] = {}
    files: dict[str, int] = {}
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        tree = []
    for proc in tree:
        try:
            name = component(proc, root.pid)
            memory, fds = proc.memory_info().rss / 2**20, proc.num_fds()
        except psutil.Error:
            continue
        rss[name] = rss.get(name, 0.0) + memory
        files[name] = files.get(name, 0) + fds
    return Sample(round(time.monotonic() - since, 1), rss, files)


@dataclass
class ResourceWatch:
    """Samples the stack under `pid` every `interval_s` on a thread, from start() to stop()."""

    pid: int
    interval_s: float = 10.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ResourceWatch:
        root = psutil.Process(self.pid)
        since = time.monotonic()

        def run() -> None:
            while True:
                self.samples.append(sample(root, since))
                if self._stop.wait(self.interval_s):
                    return

        self._thread = threading.Thread(target=run, daemon=True, name="resource-watch")
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return summarize(self.samples)


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Per component: RSS and open files at the first and last sample, the peak, and the growth. The first
    sample is taken once load runs, so one-time warm-up (imports, the first requests) is mostly behind it."""
    if len(samples) < 2:
        return {"samples": len(samples), "components": {}}
    first, last = samples[0], samples[-1]
    hours = max(last.at_s - first.at_s, 1e-9) / 3600
    components: dict[str, Any] = {}
    for name in sorted(set(first.rss_mib) & set(last.rss_mib)):
        start, end = first.rss_mib[name], last.rss_mib[name]
        components[name] = {
            "rss_mib_first": round(start, 1),
            "rss_mib_last": round(end, 1),
            "rss_mib_peak": round(max(s.rss_mib.get(name, 0.0) for s in samples), 1),
            "rss_growth_pct": round(100 * (end - start) / start, 2) if start else None,
            "rss_growth_mib_per_hour": round((end - start) / hours, 1),
            "open_files_first": first.open_files.get(name, 0),
            "open_files_last": last.open_files.get(name, 0),
            "open_files_peak": max(s.open_files.get(name, 0) for s in samples),
        }
    # The whole curve too: a step (caches filling once) and a slope (a leak) end at the same last value.
    series = {name: [[s.at_s, round(s.rss_mib.get(name, 0.0), 1)] for s in samples] for name in components}
    return {
        "samples": len(samples),
        "span_s": round(last.at_s - first.at_s, 1),
        "components": components,
        "rss_mib_series": series,
    }
