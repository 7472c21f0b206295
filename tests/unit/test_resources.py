"""The resource watch of a load run: samples a real process tree, and reports growth per component."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from loadtest.resources import ResourceWatch, Sample, summarize


def test_it_samples_a_real_process_tree_until_stopped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        watch = ResourceWatch(os.getpid(), interval_s=0.05).start()
        time.sleep(0.3)
        summary = watch.stop()
    finally:
        child.kill()
        child.wait()
    assert summary["samples"] >= 3
    row = summary["components"]["launched process (+ unnamed helpers)"]  # this process, the watched root
    assert row["rss_mib_first"] > 10 and row["open_files_first"] > 0


def test_growth_is_reported_per_component() -> None:
    samples = [
        Sample(0.0, {"gateway": 500.0, "tier-small": 900.0}, {"gateway": 40, "tier-small": 80}),
        Sample(1800.0, {"gateway": 520.0, "tier-small": 900.0}, {"gateway": 41, "tier-small": 80}),
        Sample(3600.0, {"gateway": 550.0, "tier-small": 899.0}, {"gateway": 40, "tier-small": 80}),
    ]
    summary = summarize(samples)
    gateway = summary["components"]["gateway"]
    assert gateway["rss_growth_pct"] == 10.0 and gateway["rss_growth_mib_per_hour"] == 50.0
    assert gateway["rss_mib_peak"] == 550.0 and gateway["open_files_peak"] == 41
    assert summary["components"]["tier-small"]["rss_growth_pct"] == -0.11
    assert summarize(samples[:1]) == {"samples": 1, "components": {}}
