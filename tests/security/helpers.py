"""Helpers of the security tests: the app served in process with a redaction key (what
the ``served`` fixture gives); and for the hostile-input catalogue, ``ringscope`` run in
processes of their own with their exit code, output and peak memory, the previous load
every case starts from, and a dump of every table of a DuckDB store. The fixtures are in
conftest.py; the servers of the proxy tests in servers.py."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from fastapi.testclient import TestClient

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.model import Finding

#: The redaction key of the served app and of the CLI exports.
REDACTION_KEY = "security-tests-redaction-key"


@dataclass(frozen=True)
class ServedInProcess:
    """The app in this process on a private copy of the market's store (the ``served``
    fixture), and what the tests look for."""

    client: TestClient
    store: EmbeddedStore
    #: another copy of the store, for the CLI (one process per DuckDB file)
    cli_store: Path
    runs: list[str]  # newest first
    findings: dict[str, list[Finding]]  # run id -> its findings
    identifier_values: frozenset[str]  # every identifier value in the store
    account_ids: frozenset[str]  # every account id in the store
    noted_case: str  # the case whose decision note names raw values


HERE = Path(__file__).resolve().parent
#: Longest a command of the catalogue may run.
TIMEOUT_S = 600

#: The previous, successful load every hostile load starts from: accounts the cases'
#: exports repeat (the helpers' ACCOUNTS), and rows of every other table with ids no
#: case uses, so that a change to any table shows.
PREVIOUS = {
    "accounts.csv": "account_id,roles,created_at,country\n"
    "c1,creator,2024-04-02T10:00:00Z,SG\ns1,seller,2023-11-20,MY\n"
    "b1,buyer,1700000000,ID\nb2,buyer|creator,2024-06-01T08:30:00+08:00,SG\n"
    "p1,creator|seller,2024-01-05,SG\np2,buyer,2024-01-06,MY\n",
    "streams.csv": "stream_id,creator_id,started_at,ended_at,title\n"
    "pst1,p1,2026-10-01T19:00:00Z,2026-10-01T21:00:00Z,Old deals\n",
    "engagements.csv": "account_id,stream_id,kind,ts,amount\n"
    "p2,pst1,view,2026-10-01T19:05:00Z,\np2,pst1,gift,2026-10-01T19:06:00Z,3.5\n",
    "follows.csv": "follower_id,creator_id,ts\np2,p1,2026-09-30T10:00:00Z\n",
    "orders.csv": "order_id,buyer_id,seller_id,product_id,amount,status,ts\n"
    "po1,p2,p1,pp1,20,completed,2026-10-01T19:10:00Z\n",
    "affiliations.csv": "creator_id,seller_id,commission_rate,since\np1,s1,0.1,2026-01-01\n",
    "identifiers.csv": "account_id,kind,value,first_seen\np2,device,dev-p2,2026-09-01\n",
    "labels.csv": "subject_id,label,decided_at\np2,legit,2026-10-02T10:00:00Z\n",
}


@dataclass(frozen=True)
class Run:
    """One ``ringscope`` command run in a process of its own."""

    code: int
    stdout: str
    stderr: str
    maxrss_mib: float

    @property
    def errors(self) -> list[str]:
        """The ``error:`` lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


class Ringscope:
    """Runs ``ringscope`` commands in forked children of one helper process
    (``cli_child.py``): a fresh process per command, started in milliseconds."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "cli_child.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=work,
        )

    def __call__(
        self, *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Run:
        self.count += 1
        out, err = self.work / f"{self.count}.out", self.work / f"{self.count}.err"
        request = {
            "argv": [str(a) for a in args],
            "env": {**command_env(cwd or self.work), "COLUMNS": "200", **(env or {})},
            "cwd": str(cwd or self.work),
            "stdout": str(out),
            "stderr": str(err),
        }
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT_S)
        assert ready, f"ringscope {' '.join(map(str, args))} still runs after {TIMEOUT_S} s"
        answer = json.loads(self.process.stdout.readline())
        return Run(
            answer["code"],
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            answer["maxrss_kib"] / 1024,
        )

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(60)


def command_env(cwd: Path) -> dict[str, str]:
    """Settings of a ``ringscope`` command in the tests: its own work folder, no store
    from the environment, no traceback unless asked (an empty value unsets)."""
    return {"RINGSCOPE_WORK_DIR": str(cwd / "var"), "RINGSCOPE_STORE": "", "RINGSCOPE_DEBUG": ""}


#: A small process that starts the command and answers its exit code and peak memory.
#: The command must not be forked from the test process itself: a forked child's
#: ``ru_maxrss`` counts the parent's memory it held until ``exec``.
_WRAPPER = """
import json, os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    process = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(process.pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))
"""


def run_fresh(*args: str | Path, cwd: Path) -> Run:
    """``python -m ringscope.cli ARGS`` in a new interpreter, started by a small
    wrapper process that takes its peak memory with :func:`os.wait4` on that
    process alone (not the maximum over every child so far that
    ``RUSAGE_CHILDREN`` gives)."""
    env = {**os.environ, **command_env(cwd), "COLUMNS": "200"}
    env = {k: v for k, v in env.items() if v != ""}
    out, err = cwd / "fresh.out", cwd / "fresh.err"
    command = [sys.executable, "-m", "ringscope.cli", *map(str, args)]
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(out), str(err), *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    code, maxrss_kib = json.loads(done.stdout)
    return Run(
        code,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        maxrss_kib / 1024,
    )


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a DuckDB store, sorted.

    The catalogue compares stores by their contents rather than their bytes: a load
    that wrote a batch and took it back leaves the same rows in other blocks of the
    file (DuckDB writes its log into new blocks at each checkpoint), and a refused
    load is still recorded in the ``loads`` table, by design (the callers compare
    that table apart)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        ]
        return {t: con.execute(f'SELECT * FROM main."{t}" ORDER BY ALL').fetchall() for t in tables}
    finally:
        con.close()
