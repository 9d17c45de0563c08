"""Speed and memory of the synthetic marketplace generator.

Each size runs in a fresh process so that its peak RSS is its own. Prints a table of
events, wall seconds, CPU seconds (user + system; steadier than wall time on a busy
machine), peak RSS (MB) and output size (MB).

    python benchmarks/generate.py                 # 1M events
    python benchmarks/generate.py --full          # 1M and 10M events
    python benchmarks/generate.py --events 10000000
    python benchmarks/generate.py --world random --seed 3 --buyers 200000
                                                  # a drawn world, resized to 200,000 buyers
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
from ringscope.loaders.synthetic import generate, world_from
out, events, seed, spec, buyers = sys.argv[1:]
world = world_from(spec, events=int(events) if events else None, seed=int(seed))
if int(buyers):
    world = world.resized(int(buyers))
t = time.perf_counter()
r = generate(out, seed=int(seed), world=world)
seconds = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_SELF)
cpu = use.ru_utime + use.ru_stime
print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": use.ru_maxrss / 1024,
                  "rows": r.rows, "fmt": r.fmt, "buyers": world.buyers}))
"""


def measure(
    events: int | None, seed: int = 0, world: str = "default", buyers: int = 0
) -> dict[str, float | int | str]:
    """Generate a world (the default one of ``events`` events, or ``world``: ``random`` or
    a JSON file, resized to ``buyers`` if given) in a child process; return its time, peak
    RSS and output size."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        args = [out, str(events or ""), str(seed), world, str(buyers)]
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in Path(out).iterdir())
    return {
        "buyers": result["buyers"],
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
    parser.add_argument(
        "--world", default="default", help="default, random (drawn from --seed) or PATH.json"
    )
    parser.add_argument(
        "--buyers", type=int, action="append", help="resize the world to N buyers (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.world != "default":
        if args.events or args.full:
            parser.error("--events and --full size the default world only")
        results = [measure(None, args.seed, args.world, b) for b in args.buyers or [0]]
    else:
        if args.buyers:
            parser.error("--buyers resizes a --world other than default")
        sizes = args.events or ([1_000_000, 10_000_000] if args.full else [1_000_000])
        results = [measure(n, args.seed) for n in sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table(title="ringscope generate")
    cols = ("buyers", "events", "accounts", "fmt", "seconds", "CPU s", "peak RSS (MB)")
    for col in (*cols, "output (MB)"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            f"{r['buyers']:,}",
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
