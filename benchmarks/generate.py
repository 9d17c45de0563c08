"""Speed and memory of the synthetic marketplace generator.

Each size runs in a fresh process so that its peak RSS is its own. Prints a table of
events, wall seconds, CPU seconds (user + system; steadier than wall time on a busy
machine), peak RSS (MB) and output size (MB).

    python benchmarks/generate.py                 # 1M events
    python benchmarks/generate.py --full          # 1M and 10M events
    python benchmarks/generate.py --events 10000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

_CHILD = """
import json, resource, sys, time
from ringscope.loaders.synthetic import generate
t = time.perf_counter()
r = generate(sys.argv[1], events=int(sys.argv[2]), seed=int(sys.argv[3]))
seconds = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_SELF)
cpu = use.ru_utime + use.ru_stime
print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": use.ru_maxrss / 1024,
                  "rows": r.rows, "fmt": r.fmt}))
"""


def measure(events: int, seed: int = 0) -> dict[str, float | int | str]:
    """Generate ``events`` events in a child process; return its time, peak RSS and output size."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, out, str(events), str(seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in Path(out).iterdir())
    return {
        "events": result["rows"]["engagements"],
        "accounts": result["rows"]["accounts"],
        "fmt": result["fmt"],
        "seconds": round(result["seconds"], 1),
        "cpu_seconds": round(result["cpu"], 1),
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(result["rss_mb"]),
        "output_mb": round(size / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="sizes to run (repeatable)")
    parser.add_argument("--full", action="store_true", help="run 1M and 10M events")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    sizes = args.events or ([1_000_000, 10_000_000] if args.full else [1_000_000])
    results = [measure(n, args.seed) for n in sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table(title="ringscope generate")
    for col in ("events", "accounts", "fmt", "seconds", "CPU s", "peak RSS (MB)", "output (MB)"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            f"{r['events']:,}",
            f"{r['accounts']:,}",
            str(r["fmt"]),
            f"{r['seconds']:.1f}",
            f"{r['cpu_seconds']:.1f}",
            f"{r['peak_rss_mb']:,}",
            f"{r['output_mb']:,.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
