"""Analytics at scale: the report's analyses on 1M synthetic deals (~10M stage events).

One run, each contender in its own process (so each peak memory is its own):

1. funnelwise: every analysis the HTML report runs, timed one by one, with
   the process's peak memory (target < 4 GB).
2. The comparison set, the same outputs from each contender: directly-follows
   graph with counts and deals, performance DFG (median, mean, p90 days),
   start edges and stage nodes, variants with counts and median duration, case
   durations, and the funnel (deals reaching each stage or a later one).
   - funnelwise: `discovery`, `case_durations`, `funnel`;
   - hand-written DuckDB SQL on the same store file;
   - plain pandas, from the tables loaded out of the store (load timed apart);
   - PM4Py, only when it is installed (it is not a dependency).
   Each contender runs the set FUNNELWISE_BENCH_REPEAT times (default 2) and
   the best run counts, which is the one least disturbed by other load on a
   shared machine; CPU time (all threads) is reported beside wall time.
   Targets: funnelwise within 1.5x of the SQL, >= 3x faster than pandas,
   >= 4x faster than PM4Py. The contenders' answers are checked against each
   other.

The synthetic store is built once (in a child process) and cached under
/tmp/funnelwise-bench/. funnelwise opens it with the store's own engine settings
(memory limit `default_memory_limit()`: FUNNELWISE_DUCKDB_MEMORY, else an eighth
of the machine's memory); the SQL and pandas contenders get the same limit, so
every contender spills to disk instead of growing.
FUNNELWISE_BENCH_ANALYTICS_DEALS sets another size.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.figures import Figure

CACHE = Path("/tmp/funnelwise-bench")
MEMORY_TARGET_MB = 4096.0
SQL_RATIO = 1.5
PANDAS_RATIO = 3.0
PM4PY_RATIO = 4.0
FLOW_DAYS = 90
# The comparison set runs this many times per contender; the best run counts.
REPEAT = int(os.environ.get("FUNNELWISE_BENCH_REPEAT", "2"))
Timings = dict[str, float]
CPU: Timings = {}  # CPU seconds (all threads) of each timed step, in the child process


def _deals() -> int:
    return int(os.environ.get("FUNNELWISE_BENCH_ANALYTICS_DEALS", "1000000"))


def ensure_store(deals: int, seed: int = 0) -> Path:
    """The cached synthetic project of `deals` deals, generated once in a child process."""
    root = CACHE / f"analytics-{deals}-s{seed}"
    done = root / ".complete"
    if done.exists():
        return root
    if root.exists():
        for f in root.iterdir():
            f.unlink()
    code = (
        "import sys; from funnelwise.synth import generate, write_project; "
        f"write_project(generate(deals={deals}, seed={seed}), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(root)], check=True)
    done.write_text("ok\n")
    return root


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(timings: Timings, name: str, fn: Callable[[], Any], repeat: int = 1) -> Any:
    """Run fn `repeat` times, recording the best wall time in timings and that run's CPU
    time in CPU (the best of a few runs is the least disturbed by other load)."""
    out = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu()
        out = fn()
        wall = time.perf_counter() - started
        if name not in timings or wall < timings[name]:
            timings[name] = wall
            CPU[name] = _cpu() - cpu
    return out


def _open_log(root: Path) -> Any:
    import funnelwise as fw

    log = fw.open(root)
    log.store.raw.execute("SET enable_progress_bar = false")
    return log


def _configure(con: Any) -> None:
    """A plain DuckDB connection with the engine settings funnelwise gives its store:
    the same memory limit, no progress bar."""
    from funnelwise.store.store import default_memory_limit

    con.execute(f"SET memory_limit = '{default_memory_limit()}'")
    con.execute("SET enable_progress_bar = false")


# -- contenders (each runs in a child process) ------------------------------------


def run_report_analyses(root: str) -> tuple[Timings, Timings, float]:
    """Every analysis of the HTML report, as the report calls them."""
    import pandas as pd

    import funnelwise as fw

    log = _open_log(Path(root))
    timings: Timings = {}
    calls: dict[str, Callable[[], Any]] = {
        "funnel": lambda: fw.funnel(log),
        "outcomes": lambda: fw.outcomes(log),
        "kpis": lambda: fw.kpis(log),
        "timing": lambda: fw.timing(log),
        "whose_move": lambda: fw.whose_move(log),
        "bottlenecks": lambda: fw.bottlenecks(log),
        "discovery": lambda: fw.discovery(log),
        "conformance": lambda: fw.conformance(log),
        "hygiene": lambda: fw.hygiene(log),
        "snapshot": lambda: fw.snapshot(log),
        "flow": lambda: fw.flow(log, start=log.now - pd.Timedelta(days=FLOW_DAYS), end=log.now),
    }
    for name, call in calls.items():
        _timed(timings, name, call)
    log.store.close()
    return timings, dict(CPU), _peak_mb()


def run_funnelwise_set(root: str) -> tuple[Timings, Timings, float, dict[str, Any]]:
    """The comparison set through funnelwise's own functions."""
    import funnelwise as fw
    from funnelwise.analytics import case_durations

    log = _open_log(Path(root))
    t: Timings = {}
    d = _timed(t, "dfg + performance dfg + variants", lambda: fw.discovery(log), REPEAT)
    cases = _timed(t, "case durations", lambda: case_durations(log).to_pyarrow(), REPEAT)
    f = _timed(t, "funnel", lambda: fw.funnel(log).to_frame(), REPEAT)
    edges = d.edges
    inner = edges[(edges.source != "(start)") & (edges.target != "(end)")]
    answer = {
        "edges": int(inner["count"].sum()),
        "variants": len(d.variants),
        "top_variant": int(d.variants.deals.iloc[0]),
        "cases": cases.num_rows,
        "reached": f.reached.tolist(),
    }
    log.store.close()
    return t, dict(CPU), _peak_mb(), answer


SQL_DFG = """
WITH e AS (
  SELECT deal_id, stage_id,
         lead(stage_id) OVER w AS next_stage,
         date_diff('microsecond', entered_at, lead(entered_at) OVER w) / 86400e6 AS days,
         row_number() OVER w = 1 AS first
  FROM stage_events
  WINDOW w AS (PARTITION BY deal_id ORDER BY entered_at, seq)
)
SELECT stage_id AS source, coalesce(next_stage, '(end)') AS target, count(*) AS n,
       count(DISTINCT deal_id) AS deals, median(days) AS median_days, avg(days) AS mean_days,
       quantile_cont(days, 0.9) AS p90_days, sum(first::INT) AS starts
FROM e GROUP BY ALL
"""
SQL_NODES = """
SELECT stage_id, count(*) AS entries, count(DISTINCT deal_id) AS deals
FROM stage_events GROUP BY ALL
"""
SQL_VARIANTS = """
WITH c AS (
  SELECT deal_id,
         array_to_string(list_transform(
             list_sort(list({'at': entered_at, 'seq': seq, 'stage': stage_id})),
             x -> x.stage), ',') AS variant,
         date_diff('microsecond', min(entered_at), max(entered_at)) / 86400e6 AS days
  FROM stage_events GROUP BY deal_id
)
SELECT variant, count(*) AS deals, median(days) AS median_days, avg(days) AS mean_days
FROM c GROUP BY ALL ORDER BY deals DESC, variant
"""
SQL_CASES = """
SELECT deal_id, count(*) AS n_events, min(entered_at) AS first_at, max(entered_at) AS last_at,
       date_diff('microsecond', min(entered_at), max(entered_at)) / 86400e6 AS days
FROM stage_events GROUP BY deal_id
"""
SQL_FUNNEL = """
WITH p AS (
  SELECT e.deal_id, max(s.position) FILTER (WHERE s.kind = 'open') AS furthest
  FROM stage_events e JOIN stages s ON s.stage_id = e.stage_id GROUP BY e.deal_id
), depth AS (
  SELECT CASE WHEN d.outcome = 'won' THEN (SELECT count(*) FROM stages WHERE kind = 'open')
              ELSE coalesce(p.furthest, 0) END AS depth,
         coalesce(d.amount_base, 0) AS value
  FROM deals d LEFT JOIN p USING (deal_id)
), hist AS (
  SELECT depth, count(*) AS n, sum(value) AS value FROM depth GROUP BY depth
)
SELECT s.stage_id, s.position,
       sum(h.n) AS reached, sum(h.value) AS value
FROM stages s JOIN hist h ON h.depth >= s.position
WHERE s.kind IN ('open', 'won') GROUP BY ALL ORDER BY s.position
"""
SQL_ENTERED = """
SELECT e.stage_id, count(DISTINCT e.deal_id) AS entered
FROM stage_events e JOIN stages s ON s.stage_id = e.stage_id AND s.kind = 'open'
GROUP BY ALL
"""


def run_sql_set(root: str) -> tuple[Timings, Timings, float, dict[str, Any]]:
    """The comparison set as hand-written DuckDB SQL on the store file."""
    import duckdb

    con = duckdb.connect(str(Path(root) / "funnelwise.duckdb"), read_only=True)
    _configure(con)
    t: Timings = {}

    def discovery() -> tuple[Any, Any]:
        dfg = con.execute(SQL_DFG).df()
        con.execute(SQL_NODES).df()
        return dfg, con.execute(SQL_VARIANTS).df()

    dfg, variants = _timed(t, "dfg + performance dfg + variants", discovery, REPEAT)
    cases = _timed(t, "case durations", lambda: con.execute(SQL_CASES).fetch_arrow_table(), REPEAT)

    def funnel() -> Any:
        con.execute(SQL_ENTERED).df()
        return con.execute(SQL_FUNNEL).df()

    f = _timed(t, "funnel", funnel, REPEAT)
    inner = dfg[dfg.target != "(end)"]
    answer = {
        "edges": int(inner["n"].sum()),
        "variants": len(variants),
        "top_variant": int(variants.deals.iloc[0]),
        "cases": cases.num_rows,
        "reached": [int(x) for x in f.reached],
    }
    con.close()
    return t, dict(CPU), _peak_mb(), answer


def run_pandas_set(root: str) -> tuple[Timings, Timings, float, dict[str, Any]]:
    """The comparison set written plainly in pandas, from the tables of the store."""
    import duckdb
    import numpy as np

    con = duckdb.connect(str(Path(root) / "funnelwise.duckdb"), read_only=True)
    _configure(con)
    t: Timings = {}

    def load() -> tuple[Any, Any, Any]:
        ev = con.execute("SELECT deal_id, stage_id, entered_at, seq FROM stage_events").df()
        deals = con.execute("SELECT deal_id, outcome, amount_base FROM deals").df()
        return ev, deals, con.execute("SELECT * FROM stages").df()

    ev, deals, stages = _timed(t, "load tables into pandas", load)
    con.close()

    def discovery() -> tuple[Any, Any]:
        e = ev.sort_values(["deal_id", "entered_at", "seq"])
        g = e.groupby("deal_id", sort=False)
        e["target"] = g["stage_id"].shift(-1).fillna("(end)")
        e["days"] = (g["entered_at"].shift(-1) - e["entered_at"]).dt.total_seconds() / 86400
        e["first"] = g.cumcount() == 0
        dfg = e.groupby(["stage_id", "target"]).agg(
            n=("deal_id", "size"),
            deals=("deal_id", "nunique"),
            median_days=("days", "median"),
            mean_days=("days", "mean"),
            p90_days=("days", lambda x: x.quantile(0.9)),
            starts=("first", "sum"),
        )
        e.groupby("stage_id").agg(entries=("deal_id", "size"), deals=("deal_id", "nunique"))
        cases = g.agg(
            variant=("stage_id", ",".join), first=("entered_at", "min"), last=("entered_at", "max")
        )
        cases["days"] = (cases["last"] - cases["first"]).dt.total_seconds() / 86400
        variants = cases.groupby("variant").agg(
            deals=("days", "size"), median_days=("days", "median"), mean_days=("days", "mean")
        )
        return dfg.reset_index(), variants.sort_values("deals", ascending=False)

    dfg, variants = _timed(t, "dfg + performance dfg + variants", discovery, REPEAT)

    def cases() -> Any:
        c = ev.groupby("deal_id").agg(
            n_events=("stage_id", "size"), first=("entered_at", "min"), last=("entered_at", "max")
        )
        c["days"] = (c["last"] - c["first"]).dt.total_seconds() / 86400
        return c

    case_frame = _timed(t, "case durations", cases, REPEAT)

    def funnel() -> list[int]:
        e = ev.merge(stages[["stage_id", "position", "kind"]], on="stage_id")
        opened = e[e.kind == "open"]
        furthest = opened.groupby("deal_id")["position"].max()
        d = deals.set_index("deal_id")
        n_open = int((stages.kind == "open").sum())
        depth = furthest.reindex(d.index).fillna(0).astype("int64")
        depth[d.outcome == "won"] = n_open
        counts = depth.value_counts().reindex(range(n_open + 1), fill_value=0)
        opened.drop_duplicates(["deal_id", "stage_id"]).groupby("stage_id").size()
        return [int(x) for x in np.cumsum(counts.to_numpy()[::-1])[::-1]]

    reached = _timed(t, "funnel", funnel, REPEAT)
    inner = dfg[dfg.target != "(end)"]
    answer = {
        "edges": int(inner["n"].sum()),
        "variants": len(variants),
        "top_variant": int(variants.deals.iloc[0]),
        "cases": len(case_frame),
        "reached": reached,
    }
    return t, dict(CPU), _peak_mb(), answer


def run_pm4py_set(root: str) -> tuple[Timings, Timings, float, dict[str, Any]] | None:
    """DFG, performance DFG, variants and case durations through PM4Py, if installed."""
    try:
        import pm4py
    except ImportError:
        return None
    import duckdb

    con = duckdb.connect(str(Path(root) / "funnelwise.duckdb"), read_only=True)
    _configure(con)
    t: Timings = {}
    ev = _timed(
        t,
        "load tables into pandas",
        lambda: con.execute("SELECT deal_id, stage_id, entered_at, seq FROM stage_events").df(),
    )
    con.close()

    def prepare() -> Any:
        # PM4Py needs its input sorted, or it returns wrong variants and durations.
        e = ev.sort_values(["deal_id", "entered_at", "seq"])
        return pm4py.format_dataframe(
            e, case_id="deal_id", activity_key="stage_id", timestamp_key="entered_at"
        )

    df = _timed(t, "format and sort", prepare)

    def discovery() -> tuple[Any, Any]:
        dfg, _, _ = pm4py.discover_dfg(df)
        pm4py.discover_performance_dfg(df)
        return dfg, pm4py.get_variants(df)

    dfg, variants = _timed(t, "dfg + performance dfg + variants", discovery, REPEAT)
    durations = _timed(t, "case durations", lambda: pm4py.get_all_case_durations(df), REPEAT)
    answer = {"edges": int(sum(dfg.values())), "variants": len(variants), "cases": len(durations)}
    return t, dict(CPU), _peak_mb(), answer


def _in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn in a fresh process (spawned: nothing inherited), returning its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _ratio(name: str, slow: float, fast: float, target: float, *, at_most: bool = False) -> Figure:
    ratio = slow / fast
    text = f"<= {target:g}x" if at_most else f">= {target:g}x"
    ok = ratio <= target if at_most else ratio >= target
    return Figure(name, ratio, "x", text, ok)


def main() -> list[Figure]:
    """Build (or reuse) the store, run every contender, and compare."""
    deals = _deals()
    started = time.perf_counter()
    root = ensure_store(deals)
    figures = [Figure("analytics: store build (0 when cached)", time.perf_counter() - started, "s")]
    figures.append(Figure("machine load average at start (2 cores)", os.getloadavg()[0], "procs"))
    report, report_cpu, report_mb = _in_child(run_report_analyses, str(root))
    for name, secs in report.items():
        figures.append(Figure(f"report analysis {name}", secs, "s"))
        figures.append(Figure(f"report analysis {name}, CPU all threads", report_cpu[name], "s"))
    figures.append(Figure(f"report analyses total, {deals:,} deals", sum(report.values()), "s"))
    figures.append(
        Figure(
            "report analyses peak memory",
            report_mb,
            "MiB",
            f"< {MEMORY_TARGET_MB:.0f} MiB",
            report_mb < MEMORY_TARGET_MB,
        )
    )
    sets = {
        "funnelwise": _in_child(run_funnelwise_set, str(root)),
        "sql": _in_child(run_sql_set, str(root)),
        "pandas": _in_child(run_pandas_set, str(root)),
    }
    pm4py_run = _in_child(run_pm4py_set, str(root))
    if pm4py_run is not None:
        sets["pm4py"] = pm4py_run
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for who, (timings, cpus, peak, _) in sets.items():
        for name, secs in timings.items():
            figures.append(Figure(f"{who}: {name}", secs, "s"))
        compared = [k for k in timings if not k.startswith(("load", "format"))]
        wall[who] = sum(timings[k] for k in compared)
        cpu[who] = sum(cpus[k] for k in compared)
        figures.append(Figure(f"{who}: comparison set total", wall[who], "s"))
        figures.append(Figure(f"{who}: comparison set CPU, all threads", cpu[who], "s"))
        figures.append(Figure(f"{who}: peak memory", peak, "MiB"))
    figures.append(Figure("machine load average at end (2 cores)", os.getloadavg()[0], "procs"))
    answers = {who: run[3] for who, run in sets.items()}
    base = answers["funnelwise"]
    agree = all(a[k] == base[k] for a in answers.values() for k in a)
    figures.append(Figure("comparison set: contenders agree", float(agree), "bool", "1", agree))
    fw = wall["funnelwise"]
    figures.append(
        _ratio("funnelwise / hand-written SQL", fw, wall["sql"], SQL_RATIO, at_most=True)
    )
    figures.append(_ratio("pandas / funnelwise", wall["pandas"], fw, PANDAS_RATIO))
    figures.append(Figure("funnelwise / SQL, CPU time", cpu["funnelwise"] / cpu["sql"], "x"))
    figures.append(Figure("pandas / funnelwise, CPU time", cpu["pandas"] / cpu["funnelwise"], "x"))
    with_load = wall["pandas"] + sets["pandas"][0]["load tables into pandas"]
    figures.append(Figure("pandas incl. loading / funnelwise", with_load / fw, "x"))
    if "pm4py" in wall:
        # PM4Py has no funnel: compare it with funnelwise on the steps it does run.
        pm_times = sets["pm4py"][0]
        same = [k for k in pm_times if k in sets["funnelwise"][0]]
        fw_same = sum(sets["funnelwise"][0][k] for k in same)
        fw_same_cpu = sum(sets["funnelwise"][1][k] for k in same)
        figures.append(
            _ratio("PM4Py / funnelwise (same steps)", wall["pm4py"], fw_same, PM4PY_RATIO)
        )
        figures.append(Figure("PM4Py / funnelwise, CPU time", cpu["pm4py"] / fw_same_cpu, "x"))
        with_format = wall["pm4py"] + pm_times["format and sort"]
        figures.append(
            Figure("PM4Py incl. its format and sort / funnelwise", with_format / fw_same, "x")
        )
    else:
        figures.append(Figure("PM4Py not installed: not compared", 0.0, ""))
    return figures
