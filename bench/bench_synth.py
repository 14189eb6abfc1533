"""Synthetic data at scale: generate 1M deals (~10M stage events) and write them to DuckDB.

Target: generate + write_project under 120 s on the 2-core machine. Each
generation step and each table's load is timed through the progress
callback. Set FUNNELWISE_BENCH_SYNTH_DEALS to try another size.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.figures import Figure, peak_rss_mb
from funnelwise.synth import generate, write_project
from funnelwise.synth.generate import TABLE_NAMES

TARGET_S = 120.0


class StepClock:
    """A progress callback that records the time spent between completed steps."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.steps: dict[str, float] = {}

    def __call__(self, task: str, done: int, total: int) -> None:
        if task.startswith("generate stage paths ("):
            return  # per-transition ticks inside one step
        now = time.perf_counter()
        name = task
        if task == "write store":
            name = f"write {TABLE_NAMES[done - 1]}" if done <= len(TABLE_NAMES) else "write meta"
        self.steps[name] = self.steps.get(name, 0.0) + now - self.last
        self.last = now


def main() -> list[Figure]:
    """Time generate(1M deals) and write_project to DuckDB, step by step."""
    deals = int(os.environ.get("FUNNELWISE_BENCH_SYNTH_DEALS", "1000000"))
    out = Path(tempfile.mkdtemp(prefix="fw-bench-synth-"))
    try:
        load = os.getloadavg()[0]
        clock = StepClock()
        cpu = time.process_time()
        started = time.perf_counter()
        result = generate(deals=deals, seed=0, progress=clock)
        generated = time.perf_counter()
        clock.last = generated
        write_project(result, out / "project", progress=clock)
        finished = time.perf_counter()
        cpu = time.process_time() - cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)
    events = result.tables["stage_events"].num_rows
    total = finished - started
    figures = [Figure(f"synth {name}", secs, "s") for name, secs in clock.steps.items()]
    commit = (finished - clock.last) if clock.steps else 0.0
    figures += [
        Figure("synth write commit and close", commit, "s"),
        Figure("synth generate total", generated - started, "s"),
        Figure("synth write_project total", finished - generated, "s"),
        Figure(
            f"synth generate + write, {deals:,} deals",
            total,
            "s",
            f"< {TARGET_S:.0f} s",
            total < TARGET_S,
        ),
        Figure("synth CPU time, all threads", cpu, "s"),
        Figure("machine load average at start (2 cores)", load, "procs"),
        Figure("synth deals", float(deals), "deals"),
        Figure("synth stage events", float(events), "events"),
        Figure("synth stage events per deal", events / deals, "events"),
        Figure("synth rows, all tables", float(sum(result.counts.values())), "rows"),
        Figure("synth stage events per second (end to end)", events / total, "events/s"),
        Figure("synth peak memory", peak_rss_mb(), "MiB"),
    ]
    return figures
