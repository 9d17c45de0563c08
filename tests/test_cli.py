"""The command line end to end, as users' scripts call it: real processes, real files."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "small-export"
RINGSCOPE = [sys.executable, "-m", "ringscope.cli"]


def rs(*args: str | Path, cwd: Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(cwd / "var"), "COLUMNS": "200"}
    env.pop("RINGSCOPE_STORE", None)
    p = subprocess.run(
        [*RINGSCOPE, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check is not None:
        assert p.returncode == check, (
            f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    return p


@pytest.fixture(scope="module")
def marketplace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated marketplace, loaded and detected once for the module."""
    d = tmp_path_factory.mktemp("market")
    rs("generate", d / "data", "--events", "20000", "--seed", "11", cwd=d)
    rs("load", d / "data", "--store", d / "m.duckdb", cwd=d)
    rs("detect", "--store", d / "m.duckdb", cwd=d)
    return d


def test_load_twice_gives_the_same_counts(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    first = rs("load", SMALL, "--store", db, cwd=tmp_path)
    assert "engagements" in first.stderr
    from ringscope.graphs.embedded import EmbeddedStore

    with EmbeddedStore(db) as s:
        counts = s.counts()
    assert counts["accounts"] == 47 and counts["engagements"] == 60 and counts["orders"] == 40
    rs("load", SMALL, "--store", db, cwd=tmp_path)
    with EmbeddedStore(db) as s:
        assert s.counts() == counts
        loads = s.loads()
    assert len(loads) == 2
    assert sum(t.loaded for t in loads[1].tables.values()) == 0
    assert sum(t.duplicates for t in loads[1].tables.values()) == sum(counts.values())


def test_rejected_rows_give_exit_code_3_and_a_rejects_file(tmp_path: Path) -> None:
    data = tmp_path / "bad"
    shutil.copytree(SMALL, data)
    with (data / "follows.csv").open("a", encoding="utf-8") as f:
        f.write("nobody-at-all,c01,2026-10-01T00:00:00Z\n")
    p = rs("load", data, "--store", tmp_path / "s.duckdb", cwd=tmp_path, check=3)
    rejects = tmp_path / "bad.rejects" / "follows.rejects.csv"
    assert rejects.exists(), p.stderr
    rows = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert len(rows) == 1
    assert rows[0]["column"] == "follower_id" and "nobody-at-all" in rows[0]["reason"]
    assert rows[0]["file"].endswith("follows.csv") and rows[0]["row"] == "51"


def test_unreadable_file_gives_exit_code_1_and_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    rs("load", SMALL, "--store", db, cwd=tmp_path)
    data = tmp_path / "broken"
    shutil.copytree(SMALL, data)
    gz = (data / "engagements.csv.gz").read_bytes()
    (data / "engagements.csv.gz").write_bytes(gz[: len(gz) // 2])
    p = rs("load", data, "--store", db, cwd=tmp_path, check=1)
    assert "engagements" in p.stderr
    from ringscope.graphs.embedded import EmbeddedStore

    with EmbeddedStore(db) as s:
        assert s.counts()["engagements"] == 60


def test_missing_accounts_is_an_error_naming_the_table(tmp_path: Path) -> None:
    data = tmp_path / "noacc"
    shutil.copytree(SMALL, data)
    (data / "accounts.csv").unlink()
    p = rs("load", data, "--store", tmp_path / "s.duckdb", cwd=tmp_path, check=1)
    assert "accounts" in p.stderr


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    rs("findings", "--format", "xml", cwd=tmp_path, check=2)
    rs("load", cwd=tmp_path, check=2)
    rs("no-such-command", cwd=tmp_path, check=2)


def test_findings_before_any_run_is_a_clear_error(tmp_path: Path) -> None:
    rs("load", SMALL, "--store", tmp_path / "s.duckdb", cwd=tmp_path)
    p = rs("findings", "--store", tmp_path / "s.duckdb", cwd=tmp_path, check=1)
    assert "no succeeded run" in p.stderr


def test_findings_json_has_the_documented_shape(marketplace: Path) -> None:
    p = rs("findings", "--store", marketplace / "m.duckdb", cwd=marketplace)
    doc = json.loads(p.stdout)
    assert set(doc) == {"run_id", "findings"}
    assert doc["findings"], "the generated marketplace holds planted abuse"
    scores = [f["score"] for f in doc["findings"]]
    assert scores == sorted(scores, reverse=True)
    for f in doc["findings"]:
        assert set(f) == {
            "id", "kind", "score", "members", "beneficiaries", "signals", "explanation", "detector",
        }  # fmt: skip
        assert 0.0 <= f["score"] <= 1.0
        ids = [m["account_id"] for m in f["members"]]
        assert ids == sorted(ids)
        assert set(f["members"][0]) == {"account_id", "role", "score"}
        assert set(f["detector"]) == {"name", "version", "params"}
        assert f["explanation"]
        for s in f["signals"]:
            assert set(s) == {"name", "value", "threshold", "weight"}


def test_findings_are_stable_across_runs_on_the_same_data(marketplace: Path) -> None:
    db = marketplace / "m.duckdb"
    first = json.loads(rs("findings", "--store", db, cwd=marketplace).stdout)
    rs("detect", "--store", db, cwd=marketplace)
    second = json.loads(rs("findings", "--store", db, cwd=marketplace).stdout)
    assert first["run_id"] != second["run_id"]
    assert first["findings"] == second["findings"]
    older = json.loads(
        rs("findings", "--store", db, "--run", first["run_id"], cwd=marketplace).stdout
    )
    assert older == first


def test_findings_csv_and_out_file(marketplace: Path) -> None:
    out = marketplace / "f.csv"
    rs(
        "findings",
        "--store",
        marketplace / "m.duckdb",
        "--format",
        "csv",
        "--out",
        out,
        cwd=marketplace,
    )
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and {"id", "kind", "score", "members"} <= set(rows[0])


def test_scores_give_each_account_its_highest_member_score(marketplace: Path) -> None:
    db = marketplace / "m.duckdb"
    doc = json.loads(rs("findings", "--store", db, cwd=marketplace).stdout)
    rows = list(csv.DictReader(io.StringIO(rs("scores", "--store", db, cwd=marketplace).stdout)))
    assert rows and list(rows[0]) == ["account_id", "score", "finding_id"]
    best: dict[str, float] = {}
    for f in doc["findings"]:
        for m in f["members"]:
            best[m["account_id"]] = max(best.get(m["account_id"], 0.0), m["score"])
    assert {r["account_id"] for r in rows} == set(best)
    for r in rows:
        assert abs(float(r["score"]) - best[r["account_id"]]) < 1e-6
        f = next(f for f in doc["findings"] if f["id"] == r["finding_id"])
        assert any(m["account_id"] == r["account_id"] for m in f["members"])


def test_evaluate_prints_a_table_and_json(marketplace: Path) -> None:
    p = rs("evaluate", marketplace / "data" / "truth.csv", "--store", marketplace / "m.duckdb",
           cwd=marketplace)  # fmt: skip
    doc = json.loads(p.stdout)
    assert doc["run_id"].startswith("run-")
    assert "recall" in p.stderr and "hard negatives" in p.stderr


def test_bad_policy_file_is_a_clear_error(marketplace: Path) -> None:
    pol = marketplace / "bad.yaml"
    pol.write_text("detectors:\n  lockstep:\n    params: {windw_s: 3}\n")
    p = rs("detect", "--store", marketplace / "m.duckdb", "--policy", pol, cwd=marketplace, check=1)
    assert "windw_s" in p.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_generates_loads_detects_and_serves(tmp_path: Path) -> None:
    port = _free_port()
    # a narrow terminal: the sign-in link is on a line of its own all the same
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var"), "COLUMNS": "60"}
    env["RINGSCOPE_USERS_FILE"] = str(tmp_path / "users.json")
    proc = subprocess.Popen(
        [*RINGSCOPE, "run", "--events", "20000", "--seed", "5", "--port", str(port),
         "--store", str(tmp_path / "r.duckdb")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert health["status"] == "ok"
        # no users configured: the app printed a sign-in link with a one-time admin key
        assert proc.stderr is not None
        link = ""
        while not link:
            line = proc.stderr.readline()
            assert line, "no sign-in link printed"
            link = line.strip() if "/login#key=" in line else ""
        assert link.startswith(f"http://127.0.0.1:{port}/login#key=rsk_"), link
        saved = tmp_path / "var" / "sign-in-link.txt"
        assert saved.read_text().strip() == link and saved.stat().st_mode & 0o777 == 0o600
        key = {"Authorization": f"Bearer {link.split('#key=')[1]}"}
        url = f"http://127.0.0.1:{port}/api/findings"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=10)
        assert denied.value.code == 401
        with urllib.request.urlopen(urllib.request.Request(url, headers=key), timeout=10) as r:
            page = json.loads(r.read())
        assert page["total"] > 0 and page["run_id"].startswith("run-")
        home = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=key)
        with urllib.request.urlopen(home, timeout=10) as r:
            html = r.read().decode()
        assert page["items"][0]["id"] in html
        # a first user added while the app runs: the one-time admin key keeps working
        made = subprocess.run(
            [*RINGSCOPE, "key", "gina", "--role", "viewer"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        gina = {"Authorization": f"Bearer {made.stdout.strip()}"}
        for who in (key, gina):
            with urllib.request.urlopen(urllib.request.Request(url, headers=who), timeout=10) as r:
                assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (tmp_path / "var" / "sample-20000-5" / "truth.csv").exists()


def test_run_without_serving_prints_the_queue(tmp_path: Path) -> None:
    p = rs("run", SMALL, "--no-serve", "--store", tmp_path / "r.duckdb", cwd=tmp_path)
    assert "findings" in p.stderr
