"""Run every benchmark module and print its figures side by side.

Each module `bench/bench_<topic>.py` defines `main() -> list[Figure]`. Run one
with `python -m bench <topic>`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

from bench.figures import Figure, print_figures


def main(argv: list[str]) -> int:
    """Run the selected (default: all) benchmark modules."""
    import bench

    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv]
    figures: list[Figure] = []
    for name in names:
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name} ==", flush=True)
        out = module.main()
        print_figures(out)
        figures += out
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    print("\n== all figures ==")
    print_figures(figures)
    return 0 if all(f.ok is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
