"""The case file (ZIP) of a finding: contents, checksums, determinism, escaping, redaction.

Data: tests/data/small-export (plus one account with a hostile name) loaded into an
EmbeddedStore, and hand-made findings saved through begin_run/complete_run, so the
tests do not depend on detector tuning.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ringscope.api.export import FILES, export_case, sha256
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import load_export
from ringscope.model import Beneficiary, Decision, DetectorInfo, Finding, Member, Run, Signal
from ringscope.policy import default_policy

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "small-export"
GOLDEN = ROOT / "tests" / "data" / "golden" / "export"
XSS = "<img src=x onerror=alert(1)>"
KEY = "test-redaction-key"
RUN_ID = "run-20261201T000000Z-export"
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)

EVIDENCE: dict[str, list[dict[str, Any]]] = {
    "orders": [
        {
            "order_id": "ord-10033",
            "buyer_id": "by-0033",
            "seller_id": "sl-001",
            "creator_id": "cr-005",
            "amount": 45.02,
            "commission": 4.5,
            "status": "completed",
            "ts": "2026-10-06T12:10:00+00:00",
            "refunded_at": None,
        },
        {
            "order_id": "ord-10023",
            "buyer_id": "by-0030",
            "seller_id": "sl-004",
            "creator_id": "cr-006",
            "amount": 53.45,
            "commission": 5.35,
            "status": "completed",
            "ts": "2026-10-20T20:08:00+00:00",
            "refunded_at": None,
        },
        {
            "order_id": "ord-10001",
            "buyer_id": "by-0033",
            "seller_id": "sl-003",
            "creator_id": "cr-004",
            "amount": 177.94,
            "commission": 17.79,
            "status": "refunded",
            "ts": "2026-11-04T22:08:00+00:00",
            "refunded_at": "2026-11-09T10:00:00+00:00",
        },
    ],
    "identifiers": [
        {
            "kind": "payment",
            "value": "pm-16",
            "accounts": ["by-0013", "by-0025"],
            "n_accounts": 2,
            "n_accounts_total": 2,
            "first_seen": "2025-05-05T21:00:00+00:00",
        }
    ],
    "engagements": [
        {
            "account_id": "by-0025",
            "stream_id": "st-0021",
            "kind": "like",
            "ts": "2026-11-04T21:50:00+00:00",
        }
    ],
    "counts": [{"source": "orders", "shown": 3, "total": 3}],
}


def golden_finding() -> Finding:
    f = Finding.build(
        kind="commission_ring",
        score=0.82,
        members=[
            Member("by-0013", "buyer", 0.7),
            Member("by-0025", "buyer", 0.75),
            Member("by-0030", "buyer", 0.9),
            Member("by-0033", "buyer", 0.95),
        ],
        beneficiaries=[Beneficiary("cr-004", "creator"), Beneficiary("sl-003", "seller")],
        signals=[
            Signal("refund_rate", 0.33, 0.25, 0.4),
            Signal("shared_payment", 1.0, 0.5, 0.35),
            Signal("new_accounts", 0.1, 0.3, 0.25),
        ],
        explanation="4 buyers ordered through cr-004's links from sl-003; two share card pm-16.",
        detector=DetectorInfo("commission", "1.2.0", {"min_buyers": 3, "window_days": 30}),
        evidence=EVIDENCE,
    )
    return Finding.from_dict({**f.to_dict(), "status": "new", "case_id": f.id})


def xss_finding() -> Finding:
    return Finding.build(
        kind="identity_cluster",
        score=0.6,
        members=[Member(XSS, "buyer", 0.6), Member("by-0025", "buyer", 0.5)],
        beneficiaries=[Beneficiary("sl-003", "seller")],
        signals=[Signal("shared_device", 1.0, 0.5, 1.0)],
        explanation=f"{XSS} shares device dv-xss-1 with by-0025.",
        detector=DetectorInfo("identifiers", "1.0.0", {}),
        evidence={
            "identifiers": [
                {"kind": "device", "value": "dv-xss-1", "accounts": [XSS, "by-0025"]},
            ]
        },
    )


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small export plus a hostile account, one run with two hand-made findings."""
    d = tmp_path_factory.mktemp("export")
    data = d / "data"
    shutil.copytree(SMALL, data)
    with (data / "accounts.csv").open("a", encoding="utf-8") as fh:
        fh.write(f'"{XSS}",buyer,2026-09-01T00:00:00Z,SG,active\r\n')
    with (data / "identifiers.jsonl").open("a", encoding="utf-8") as fh:
        for acc in (XSS, "by-0025"):
            fh.write(
                json.dumps(
                    {
                        "account_id": acc,
                        "kind": "device",
                        "value": "dv-xss-1",
                        "first_seen": "2026-09-02T00:00:00Z",
                    }
                )
                + "\n"
            )
    path = d / "s.duckdb"
    with EmbeddedStore(path) as s:
        report = load_export(s, data, rejects_dir=d / "rejects")
        assert report.rejected == 0 and not report.failed
        policy = default_policy()
        s.begin_run(
            Run(
                id=RUN_ID,
                started_at=datetime(2026, 12, 1, tzinfo=UTC),
                status="running",
                policy=policy.model_dump(),
                data_fingerprint=s.fingerprint(),
                summary={"policy_digest": policy.digest()},
            )
        )
        s.complete_run(
            RUN_ID,
            [golden_finding(), xss_finding()],
            {"policy_digest": policy.digest(), "findings": 2},
        )
        s.record_decision(
            Decision(
                golden_finding().id,
                "confirmed",
                "analyst-1",
                datetime(2026, 12, 1, 12, tzinfo=UTC),
                "card shared with refunds",
            )
        )
    return path


@pytest.fixture
def export_store(store_file: Path, tmp_path: Path) -> Iterator[EmbeddedStore]:
    """A private copy of :func:`store_file`, for one test."""
    copy = tmp_path / "s.duckdb"
    shutil.copy(store_file, copy)
    with EmbeddedStore(copy) as s:
        yield s


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def detail(entry: dict[str, object]) -> dict[str, Any]:
    d = entry["detail"]
    assert isinstance(d, dict)
    return d


def export(store: EmbeddedStore, finding: Finding, **kw: Any) -> dict[str, bytes]:
    return unzip(export_case(store, finding.id, who="tester", via="test", **kw).data)


# ----------------------------------------------------------------------------- contents


def test_file_list_checksums_and_manifest(export_store: EmbeddedStore, tmp_path: Path) -> None:
    f = golden_finding()
    result = export_case(export_store, f.id, who="tester", via="test")
    with zipfile.ZipFile(io.BytesIO(result.data)) as z:
        assert z.namelist() == list(FILES)
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        z.extractall(tmp_path / "case")
    files = unzip(result.data)
    p = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"],
        cwd=tmp_path / "case",
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(": OK") == len(FILES) - 1
    manifest = json.loads(files["manifest.json"])
    assert set(manifest["files"]) == set(FILES) - {"manifest.json", "SHA256SUMS"}
    for name, digest in manifest["files"].items():
        assert sha256(files[name]) == digest
    assert manifest["finding_id"] == f.id and manifest["case_id"] == f.id
    assert manifest["run_id"] == RUN_ID
    assert manifest["policy_digest"] == default_policy().digest()
    assert manifest["policy"]["version"] == default_policy().version
    assert manifest["data_fingerprint"] == export_store.fingerprint()
    assert manifest["loads"][0]["fingerprint"] and manifest["loads"][0]["tables"]
    assert manifest["detectors"] == [
        {"name": "commission", "version": "1.2.0", "params": {"min_buyers": 3, "window_days": 30}}
    ]
    assert any(q.get("call") == "store.neighbourhood" for q in manifest["queries"])
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    metrics = json.loads(files["metrics.json"])
    assert metrics["orders"] == {
        "count": 3,
        "gmv": 276.41,
        "commission": 27.64,
        "refunded_count": 1,
        "refunded_amount": 177.94,
        "cancelled_count": 0,
    }
    assert metrics["evidence_rows"] == {"engagements": 1, "identifiers": 1, "orders": 3}
    summary = files["summary.md"].decode()
    for heading in ("Who", "What", "When", "Where", "Why", "How", "Automated", "Decision"):
        assert f"## {heading}" in summary
    assert "confirmed" in summary and "analyst-1" in summary
    assert files["graph.png"].startswith(b"\x89PNG\r\n\x1a\n")
    log = export_store.audit_log(action="export")
    assert log[0]["who"] == "tester" and log[0]["subject"] == f.id
    assert detail(log[0])["redacted"] is False


def test_two_exports_differ_only_in_the_manifest_creation_time(export_store: EmbeddedStore) -> None:
    f = golden_finding()
    a = export(export_store, f, now=datetime(2026, 12, 2, tzinfo=UTC))
    b = export(export_store, f, now=datetime(2027, 1, 5, tzinfo=UTC))
    assert list(a) == list(b)
    for name in FILES:
        if name not in ("manifest.json", "SHA256SUMS"):
            assert a[name] == b[name], name
    ma, mb = json.loads(a["manifest.json"]), json.loads(b["manifest.json"])
    assert ma.pop("created_at") != mb.pop("created_at")
    assert ma == mb
    same = export_case(export_store, f.id, who="t", via="test", now=NOW).data
    assert same == export_case(export_store, f.id, who="t", via="test", now=NOW).data


@pytest.mark.parametrize("name", ["members.csv", "evidence.csv", "signals.json", "summary.md"])
def test_golden_files(export_store: EmbeddedStore, name: str, update_golden: bool) -> None:
    got = export(export_store, golden_finding(), now=NOW)[name]
    path = GOLDEN / name
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(got)
    assert path.exists(), f"no golden {path}: run pytest --update-golden"
    assert got.decode() == path.read_text("utf-8")


def test_graph_is_self_contained_and_holds_the_nodes(export_store: EmbeddedStore) -> None:
    f = golden_finding()
    page = export(export_store, f)["graph.html"].decode()
    # nothing the page would fetch: no external script, style sheet, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script src" not in page and "<link" not in page
    assert "vis.Network" in page
    m = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page, re.S)
    assert m
    data = json.loads(m.group(1))
    ids = {n["id"] for n in data["nodes"]}
    for a in (*f.member_ids, "cr-004", "sl-003"):
        assert f"Account:{a}" in ids
    assert "Identifier:payment:pm-16" in ids
    assert data["edges"]


def test_hostile_names_are_escaped(export_store: EmbeddedStore) -> None:
    files = export(export_store, xss_finding())
    for name in ("summary.html", "graph.html"):
        text = files[name].decode()
        assert "<img src=x" not in text, name
    assert "&lt;img src=x onerror=alert(1)&gt;" in files["summary.html"].decode()
    graph = files["graph.html"].decode()
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in graph
    assert "\\<img src=x onerror=alert(1)\\>" in files["summary.md"].decode()


# ----------------------------------------------------------------------------- redaction


def _all_text(files: dict[str, bytes]) -> str:
    return "\n".join(v.decode("utf-8", "replace") for k, v in files.items() if k != "graph.png")


def test_redaction_removes_identifiers_and_accounts_consistently(
    export_store: EmbeddedStore,
) -> None:
    f = golden_finding()
    plain = export(export_store, f)
    assert "pm-16" in _all_text(plain)
    a = export(export_store, f, redact=True, key=KEY)
    b = export(export_store, f, redact=True, redact_accounts=True, key=KEY)
    c = export(export_store, f, redact=True, redact_accounts=True, key=KEY)
    idf = export_store.table("identifiers")
    ids = set(f.member_ids) | {"cr-004", "sl-003"}
    values = set(idf[idf["account_id"].isin(ids)]["value"].astype(str)) | {"pm-16"}
    for files in (a, b):
        text = _all_text(files)
        for v in values:
            assert v not in text, v
    assert "by-0030" in _all_text(a)
    text_b = _all_text(b)
    for acc in (*f.member_ids, "cr-004", "sl-003", "by-0013"):
        assert re.search(rf"(?<![\w-]){re.escape(acc)}(?![\w-])", text_b) is None, acc
    token = re.findall(r"payment-[0-9a-f]{16}", a["evidence.csv"].decode())
    assert token and token[0] in b["evidence.csv"].decode()
    assert token[0] in a["graph.html"].decode() and token[0] in a["summary.md"].decode()
    for name in FILES:
        if name not in ("manifest.json", "SHA256SUMS"):
            assert b[name] == c[name], name
    assert json.loads(b["manifest.json"])["redaction"]["accounts"] is True
    log = export_store.audit_log(action="export", limit=1)
    assert detail(log[0])["redacted"] is True and detail(log[0])["redacted_accounts"] is True


def _graph_data(page: bytes) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page.decode())
    assert m
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def test_redacted_graph_labels_and_tooltips_are_made_of_tokens(export_store: EmbeddedStore) -> None:
    """Labels are shortened after redaction (a shortened label is the start of a token,
    never of a value), and every account id in a tooltip is replaced: the orders' buyers
    and sellers, the streams' creators, not only the case's members."""
    f = golden_finding()
    files = export(export_store, f, redact=True, redact_accounts=True, key=KEY)
    nodes = _graph_data(files["graph.html"])["nodes"]
    accounts = set(export_store.table("accounts")["account_id"].astype(str))
    idf = export_store.table("identifiers")
    raw = accounts | set(idf["value"].astype(str))
    raw |= {f"{k}:{v}" for k, v in zip(idf["kind"], idf["value"], strict=True)}
    shortened = [n["label"][:-1] for n in nodes if n["label"].endswith("…")]
    assert shortened, "no label was shortened"
    for start in shortened:
        assert not any(v.startswith(start) for v in raw), start
    text = json.dumps(nodes, ensure_ascii=False)
    for a in accounts:
        assert re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", text) is None, a
    lines = [(n["id"].split(":")[0], line) for n in nodes for line in n["title"].split("\n")]
    named = [(label, line) for label, line in lines if re.match(r"\w+_id: ", line)]
    account_lines = [
        (label, line)
        for label, line in named
        if line.split(":")[0] in ("buyer_id", "seller_id", "creator_id", "account_id")
    ]
    assert {("Order", "buyer_id"), ("Stream", "creator_id")} <= {
        (label, line.split(":")[0]) for label, line in account_lines
    }
    for label, line in account_lines:
        assert re.fullmatch(r"\w+_id: acct-[0-9a-f]{16}", line), (label, line)
    assert any(n["id"].startswith("Identifier:payment:payment-") for n in nodes)


def test_redaction_without_a_key_is_a_clear_error(export_store: EmbeddedStore) -> None:
    from ringscope.errors import ConfigError

    with pytest.raises(ConfigError, match="RINGSCOPE_REDACTION_KEY"):
        export_case(export_store, golden_finding().id, who="t", via="test", redact=True, key="")


# ----------------------------------------------------------------------------- CLI and API


def rs(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Any:
    e = {**os.environ, "RINGSCOPE_WORK_DIR": str(cwd / "var"), "COLUMNS": "200", **(env or {})}
    e.pop("RINGSCOPE_STORE", None)
    if env is None or "RINGSCOPE_REDACTION_KEY" not in env:
        e.pop("RINGSCOPE_REDACTION_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "ringscope.cli", *map(str, args)],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_export(store_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    shutil.copy(store_file, db)
    f = golden_finding()
    p = rs("export", f.id, "--store", db, cwd=tmp_path, env={"USER": "cli-user"})
    assert p.returncode == 0, p.stderr
    assert unzip((tmp_path / f"{f.id}.zip").read_bytes())["members.csv"]
    out = tmp_path / "case.zip"
    p = rs(
        "export",
        f.id,
        "--store",
        db,
        "--out",
        out,
        "--redact",
        cwd=tmp_path,
        env={"USER": "cli-user", "RINGSCOPE_REDACTION_KEY": KEY},
    )
    assert p.returncode == 0, p.stderr
    assert "pm-16" not in _all_text(unzip(out.read_bytes()))
    p = rs("export", f.id, "--store", db, "--redact", cwd=tmp_path)
    assert p.returncode == 1 and "RINGSCOPE_REDACTION_KEY" in p.stderr
    p = rs("export", "no-such-finding", "--store", db, cwd=tmp_path)
    assert p.returncode == 1 and "no finding 'no-such-finding'" in p.stderr
    assert "Traceback" not in p.stderr
    p = rs("export", f.id, "--store", db, "--redact-accounts", cwd=tmp_path)
    assert p.returncode == 2
    with EmbeddedStore(db) as s:
        log = s.audit_log(action="export")
    # the OS account the command ran as, not $USER (anyone can set it)
    account = pwd.getpwuid(os.geteuid()).pw_name
    assert account != "cli-user"
    assert [e["who"] for e in log] == [account, account]
    assert [detail(e)["redacted"] for e in log] == [True, False]


def test_api_download(export_store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient
    from helpers.app import access_for, auth

    from ringscope.api.app import create_app
    from ringscope.settings import get_settings

    f = golden_finding()
    monkeypatch.delenv("RINGSCOPE_REDACTION_KEY", raising=False)
    get_settings.cache_clear()
    try:
        access = access_for({"api-user": "investigator"})
        with TestClient(
            create_app(store=export_store, access=access), headers=auth("api-user")
        ) as client:
            r = client.get(f"/api/findings/{f.id}/export")
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/zip"
            assert r.headers["content-disposition"] == f'attachment; filename="{f.id}.zip"'
            assert list(unzip(r.content)) == list(FILES)
            assert client.get("/api/findings/no-such/export").status_code == 404
            r = client.get(f"/api/findings/{f.id}/export", params={"redact": True})
            assert r.status_code == 400 and "RINGSCOPE_REDACTION_KEY" in r.json()["detail"]
            page = client.get(f"/findings/{f.id}")
            assert f'href="/api/findings/{f.id}/export"' in page.text
        log = export_store.audit_log(who="api-user", action="export")
        assert len(log) == 1 and detail(log[0])["channel"] == "api"
    finally:
        get_settings.cache_clear()


def test_a_tampered_file_fails_the_checksums(export_store: EmbeddedStore, tmp_path: Path) -> None:
    data = export_case(export_store, golden_finding().id, who="tester", via="test").data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        z.extractall(tmp_path / "case")
    members = tmp_path / "case" / "members.csv"
    members.write_bytes(members.read_bytes().replace(b"buyer", b"bayer", 1))
    p = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "case", capture_output=True, text=True
    )
    assert p.returncode != 0
    assert "members.csv: FAILED" in p.stdout
