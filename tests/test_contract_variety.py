"""Real exports' variety: order statuses and identifier kinds beyond the canonical ones,
mapped by the policy; timestamps in mixed time zones.

A small export says ``delivered``, ``shipped``, ``returned``, ``chargeback`` and
``disputed``, and names identifiers ``email``, ``imei`` and ``cookie``. It loads
whole; the load report and ``ringscope load`` list the values the default mapping
does not know; detection maps the rest, so that a ring whose buyers charge back is a
commission ring and accounts behind one IMEI are an identity cluster, and it lists
what it did not map.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, MarketTables, ValueMap
from ringscope.algorithms.identifiers import identifier_usage
from ringscope.api.export import export_case
from ringscope.contract import (
    IDENTIFIER_KIND_ALIASES,
    MAX_CODE_LENGTH,
    ORDER_STATUS_ALIASES,
    TABLES,
)
from ringscope.errors import ConfigError
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.jobs.detect import run_detection
from ringscope.loaders.pipeline import load_export, read_table
from ringscope.model import NodeRef
from ringscope.policy import MappingPolicy, default_policy, load_policy

T0 = datetime(2026, 10, 1, tzinfo=UTC)
RING = [f"rb{i}" for i in range(8)]
FARM = [f"f{i}" for i in range(8)]
HOME = ["h1", "h2", "h3"]
IMEI = "356938035643809"


BACKGROUND = 200


def _background_status(i: int) -> str:
    """The status of ordinary order ``i``: about 6% returned, a few disputed."""
    if i % 16 == 0:
        return "returned"
    if i % 25 == 7:
        return "disputed"
    return ("delivered", "shipped", "Completed")[i % 3]


def _ring_status(k: int) -> str:
    """The status of the ring's order ``k``: 70% charged back or returned."""
    return ("chargeback" if k % 2 else "returned") if k % 10 < 7 else "delivered"


#: Orders per status that the default mapping does not know or that a strict one leaves.
DISPUTED = sum(_background_status(i) == "disputed" for i in range(BACKGROUND))
RETURNED = sum(_background_status(i) == "returned" for i in range(BACKGROUND)) + sum(
    _ring_status(k) == "returned" for k in range(40)
)
CHARGEBACKS = sum(_ring_status(k) == "chargeback" for k in range(40))


def _at(t: datetime, zone: int = 0) -> str:
    """``t`` as ISO 8601 in the zone ``zone`` hours from UTC (the same instant)."""
    return t.astimezone(timezone(timedelta(hours=zone))).isoformat()


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(["" if v is None else v for v in r] for r in rows)


def write_variety_export(folder: Path) -> Path:
    """An export in the words of a real marketplace (see the module docstring).

    - 60 ordinary buyers ordering through 7 creators from 5 sellers, their orders
      ``delivered``, ``shipped`` or ``completed``, about 6% ``returned`` and a few
      ``disputed``;
    - a commission ring: creator ``C``, seller ``S`` and 8 buyers created two days
      before their first order, ordering only through ``C``, 70% of the orders charged
      back or returned after the commission accrued; no identifier ties them;
    - an incentive farm: 8 accounts created the same week behind one phone (an ``imei``)
      and one ``cookie``, one small first order each;
    - a household: 3 old accounts sharing an ``email`` and a ``cookie``.

    Times are written in several zones (``+08:00``, ``-05:00``, ``Z``, no zone, Unix
    seconds); every one is exact.
    """
    folder.mkdir(parents=True, exist_ok=True)
    old = T0 - timedelta(days=700)
    accounts: list[list[Any]] = [[f"u{i}", "buyer", _at(old, 8)] for i in range(60)]
    accounts += [[f"c{i}", "creator", _at(old, -5)] for i in range(7)]
    accounts += [[f"s{i}", "seller", int(old.timestamp())] for i in range(5)]
    accounts += [["C", "creator", _at(old)], ["S", "seller", _at(old)]]
    accounts += [[b, "buyer", _at(T0 + timedelta(days=1), 8)] for b in RING]
    accounts += [
        [a, "buyer", _at(T0 + timedelta(days=20, hours=i), -5)] for i, a in enumerate(FARM)
    ]
    accounts += [[h, "buyer", old.replace(tzinfo=None).isoformat()] for h in HOME]
    _write(folder / "accounts.csv", ["account_id", "roles", "created_at"], accounts)

    orders: list[list[Any]] = []
    header = [
        "order_id", "buyer_id", "seller_id", "product_id", "amount", "status", "ts",
        "creator_id", "commission", "refunded_at",
    ]  # fmt: skip
    for i in range(BACKGROUND):
        ts = T0 + timedelta(hours=i)
        status = _background_status(i)
        refunded = _at(ts + timedelta(days=4), 8) if status == "returned" else None
        orders.append(
            [f"bg{i}", f"u{i % 60}", f"s{i % 5}", f"p{i % 13}", 20 + i % 50, status,
             _at(ts, (0, 8, -5)[i % 3]), f"c{i % 7}", 2.0, refunded]
        )  # fmt: skip
    k = 0
    for b in RING:
        for _ in range(5):
            ts = T0 + timedelta(days=3, minutes=7 * k)
            status = _ring_status(k)
            refunded = _at(ts + timedelta(days=3), -5) if status != "delivered" else None
            orders.append([f"r{k}", b, "S", "pR", 80, status, _at(ts, 8), "C", 16.0, refunded])
            k += 1
    for i, a in enumerate(FARM):
        ts = T0 + timedelta(days=25, minutes=i)
        orders.append(
            [f"fo{i}", a, "s0", "coupon", 3, "paid", int(ts.timestamp()), None, None, None]
        )
    for i in range(12):
        ts = T0 + timedelta(days=i)
        row = [f"ho{i}", HOME[i % 3], f"s{i % 5}", "p1", 40 + i, "delivered", _at(ts)]
        orders.append([*row, None, None, None])
    _write(folder / "orders.csv", header, orders)

    seen = _at(T0 + timedelta(days=20), 8)
    idents: list[list[Any]] = [[a, "IMEI", IMEI, seen] for a in FARM]
    idents += [[a, "cookie", "ck-farm", seen] for a in FARM]
    idents += [[h, "email", "family@example.org", _at(old)] for h in HOME]
    idents += [[h, "cookie", "ck-home", _at(old)] for h in HOME]
    idents += [[f"u{i}", "email", f"u{i}@example.org", _at(old)] for i in range(60)]
    _write(folder / "identifiers.csv", ["account_id", "kind", "value", "first_seen"], idents)
    return folder


@pytest.fixture(scope="module")
def variety(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_variety_export(tmp_path_factory.mktemp("variety") / "export")


def _policy(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


# --------------------------------------------------------------------------- loading


def test_the_export_loads_whole_and_the_report_lists_what_the_mapping_does_not_know(
    variety: Path, tmp_path: Path
) -> None:
    with EmbeddedStore(tmp_path / "s.duckdb") as store:
        report = load_export(store, variety, rejects_dir=tmp_path / "rejects")
        assert report.rejected == 0 and not report.failed
        assert report.tables["orders"].unknown_values == {"status": {"disputed": DISPUTED}}
        assert report.tables["identifiers"].unknown_values == {"kind": {"cookie": 11}}
        assert report.unknown_values == {
            "orders.status": {"disputed": DISPUTED},
            "identifiers.kind": {"cookie": 11},
        }
        # kept as given, trimmed and in lower case
        orders = store.table("orders").set_index("order_id")
        assert orders.loc["bg2", "status"] == "completed"  # written "Completed"
        assert orders.loc["r1", "status"] == "chargeback"
        kinds = store.table("identifiers").groupby("kind").size().to_dict()
        assert kinds == {"cookie": 11, "email": 63, "imei": 8}
        # the report is kept with the load
        assert store.loads()[-1].tables["orders"].unknown_values == {
            "status": {"disputed": DISPUTED}
        }
        # every zone gave the instant it names
        ts = orders["ts"]
        assert ts["bg1"] == pd.Timestamp(T0 + timedelta(hours=1))  # written +08:00
        assert ts["bg2"] == pd.Timestamp(T0 + timedelta(hours=2))  # written -05:00
        assert ts["fo0"] == pd.Timestamp(T0 + timedelta(days=25))  # Unix seconds
        acc = store.table("accounts").set_index("account_id")["created_at"]
        assert acc["h1"] == acc["C"] == acc["s0"] == acc["u0"] == acc["c0"]


def test_ringscope_load_warns_about_unknown_values_and_exits_0(
    variety: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var"), "COLUMNS": "200"}
    env.pop("RINGSCOPE_STORE", None)
    p = subprocess.run(
        [sys.executable, "-m", "ringscope.cli", "load", str(variety), "--store", "s.duckdb"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stderr.splitlines() if "warning" in line]
    assert any("orders.status" in line and f"'disputed' ({DISPUTED})" in line for line in lines), (
        p.stderr
    )
    assert any("identifiers.kind" in line and "'cookie' (11)" in line for line in lines), p.stderr


def test_codes_are_checked_row_by_row(tmp_path: Path) -> None:
    export = tmp_path / "e"
    export.mkdir()
    (export / "accounts.csv").write_text("account_id,roles,created_at\nb1,buyer,2026-01-01\n")
    rows = [
        ["o1", "  Refund_Requested ", "device"],
        ["o2", "", "device"],
        ["o3", "x" * (MAX_CODE_LENGTH + 1), "device"],
        ["o4", "void\x00", "device"],
    ]
    _write(
        export / "orders.csv",
        ["order_id", "buyer_id", "seller_id", "product_id", "amount", "status", "ts"],
        [[o, "b1", "b1", "p", 1, s, "2026-02-01T00:00:00Z"] for o, s, _ in rows],
    )
    result = read_table(export / "orders.csv")
    assert result.frame["status"].tolist() == ["refund_requested"]
    reasons = dict(zip(result.rejects["row"], result.rejects["reason"], strict=True))
    assert reasons[2] == "missing value"
    assert reasons[3] == f"longer than {MAX_CODE_LENGTH} characters (65 characters)"
    assert reasons[4].startswith("holds a control character (U+0000")


# --------------------------------------------------------------------------- mixed time zones

ZONED = [
    ("2026-11-01T10:00:00+08:00", "2026-11-01T02:00:00Z"),
    ("2026-11-01T10:00:00-05:00", "2026-11-01T15:00:00Z"),
    ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00", "2026-11-01T10:00:00Z"),  # no zone: UTC
    ("2026-11-01 10:00:00.250+05:30", "2026-11-01T04:30:00.250Z"),
    ("1793527200", "2026-11-01T10:00:00Z"),  # Unix seconds in the same column
    ("1793527200.5", "2026-11-01T10:00:00.500Z"),
]


def _follows(times: list[Any]) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {"follower_id": [f"a{i}" for i in range(n)], "creator_id": "c", "ts": times}
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_one_column_may_mix_zones_naive_times_and_unix_seconds(tmp_path: Path, fmt: str) -> None:
    frame = _follows([given for given, _ in ZONED])
    path = tmp_path / f"follows.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    result = read_table(path)
    assert result.rejects.empty
    assert result.frame["ts"].tolist() == [pd.Timestamp(want) for _, want in ZONED]


def test_parquet_timestamps_in_a_zone_other_than_utc_are_instants(tmp_path: Path) -> None:
    local = pd.Series(pd.to_datetime(["2026-11-01 10:00", "2026-11-02 23:30"])).dt.tz_localize(
        "Asia/Singapore"
    )
    pq.write_table(pa.Table.from_pandas(_follows(list(local))), tmp_path / "follows.parquet")
    assert pq.read_schema(tmp_path / "follows.parquet").field("ts").type.tz == "Asia/Singapore"
    result = read_table(tmp_path / "follows.parquet")
    assert result.frame["ts"].tolist() == [
        pd.Timestamp("2026-11-01T02:00:00Z"),
        pd.Timestamp("2026-11-02T15:30:00Z"),
    ]


def test_naive_parquet_timestamps_are_utc(tmp_path: Path) -> None:
    naive = pa.array([datetime(2026, 11, 1, 10), datetime(2026, 11, 2, 23, 30)], pa.timestamp("ms"))
    table = pa.table({"follower_id": ["a", "b"], "creator_id": ["c", "c"], "ts": naive})
    pq.write_table(table, tmp_path / "follows.parquet")
    result = read_table(tmp_path / "follows.parquet")
    assert result.frame["ts"].tolist() == [
        pd.Timestamp("2026-11-01T10:00:00Z"),
        pd.Timestamp("2026-11-02T23:30:00Z"),
    ]


# --------------------------------------------------------------------------- the policy's mapping


def test_the_default_policy_maps_the_contract_aliases() -> None:
    mapping = default_policy().mapping
    assert mapping == MappingPolicy()
    assert mapping.order_statuses == {k: list(v) for k, v in ORDER_STATUS_ALIASES.items()}
    assert mapping.identifier_kinds == {k: list(v) for k, v in IDENTIFIER_KIND_ALIASES.items()}
    assert mapping.other_identifier_weight == OTHER_IDENTIFIER_WEIGHT
    # the stages of an order's status follow the same aliases
    stages = TABLES["orders"].column("status").stages
    assert stages[1] == (ORDER_STATUS_ALIASES["completed"],)
    assert stages[2] == (ORDER_STATUS_ALIASES["cancelled"], ORDER_STATUS_ALIASES["refunded"])


def test_a_policy_file_changes_the_entries_it_names(tmp_path: Path) -> None:
    p = _policy(
        tmp_path,
        "mapping:\n"
        "  order_statuses:\n"
        "    refunded: [refunded, returned, chargeback, ' Disputed ']\n"
        "  other_identifier_weight: 0.1\n",
    )
    assert p.mapping.order_statuses["refunded"] == [
        "refunded",
        "returned",
        "chargeback",
        "disputed",
    ]
    assert p.mapping.order_statuses["cancelled"] == list(ORDER_STATUS_ALIASES["cancelled"])
    assert p.mapping.identifier_kinds == MappingPolicy().identifier_kinds
    assert p.mapping.other_identifier_weight == 0.1
    assert p.digest() != default_policy().digest()
    assert p.mapping.value_map().order_statuses["disputed"] == "refunded"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mapping: {order_statuses: {lost: [missing]}}\n", "'lost' is not one of the order"),
        (
            "mapping: {order_statuses: {cancelled: [cancelled, returned]}}\n",
            "'returned' is mapped to both 'cancelled' and 'refunded'",
        ),
        ("mapping: {identifier_kinds: {ip: [device]}}\n", "'device' is mapped to both"),
        ("mapping: {other_identifier_weight: 2}\n", "mapping.other_identifier_weight"),
        ("mapping: {colours: {}}\n", "mapping.colours"),
    ],
)
def test_bad_mappings_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _policy(tmp_path, text)
    assert message in str(e.value)


def test_mapping_the_tables_once_gives_canonical_values_and_lists_the_rest() -> None:
    orders = pd.DataFrame({"status": ["delivered", "chargeback", "disputed", "void", "disputed"]})
    ids = pd.DataFrame({"kind": ["imei", "cookie", "email", "ip"]})
    tables = MarketTables(orders=orders, identifiers=ids).mapped(ValueMap.default())
    assert tables.orders["status"].tolist() == [
        "completed",
        "refunded",
        "disputed",
        "cancelled",
        "disputed",
    ]
    assert tables.identifiers["kind"].tolist() == ["device", "cookie", "phone", "ip"]
    assert tables.unmapped == {"orders.status": {"disputed": 2}, "identifiers.kind": {"cookie": 1}}
    again = tables.mapped(ValueMap.default())
    assert again.orders.equals(tables.orders) and again.unmapped == tables.unmapped
    assert orders["status"].tolist()[1] == "chargeback"  # the input is not changed
    # a window keeps the weight
    light = MarketTables(identifiers=ids).mapped(ValueMap.from_aliases({}, {}, 0.05))
    assert light.window(None).other_identifier_weight == 0.05


def test_an_unmapped_kind_weighs_the_default_weight_and_a_mapped_one_its_kinds() -> None:
    t = pd.Timestamp(T0)
    ids = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "a", "b", "c", "d", "a", "b"],
            "kind": ["device"] * 3 + ["cookie"] * 4 + ["ip"] * 2,
            "value": ["d1"] * 3 + ["k1"] * 4 + ["1.2.3.4"] * 2,
            "first_seen": [t] * 9,
        }
    )
    usage = identifier_usage(ids, max_accounts_per_identifier=30)
    weight = usage.drop_duplicates("kind").set_index("kind")["weight"]
    assert weight["device"] == pytest.approx(1.0 / np.log2(3))
    assert weight["cookie"] == pytest.approx(OTHER_IDENTIFIER_WEIGHT / np.log2(4))
    assert weight["ip"] == pytest.approx(0.4)
    # a policy weight of 0 drops the unmapped kind; a known kind left out of
    # ``kind_weights`` weighs nothing, as before
    assert "cookie" not in set(
        identifier_usage(ids, max_accounts_per_identifier=30, other_weight=0)["kind"]
    )
    only_device = identifier_usage(
        ids, max_accounts_per_identifier=30, kind_weights={"device": 1.0}
    )
    assert set(only_device["kind"]) == {"device", "cookie"}


def test_label_propagation_links_through_an_unmapped_kind_with_the_default_weight() -> None:
    from ringscope.algorithms.linkanalysis import account_graph

    t = pd.Timestamp(T0)
    ids = pd.DataFrame(
        {"account_id": ["a", "b"], "kind": "cookie", "value": "k1", "first_seen": [t, t]}
    )
    nodes, edges = account_graph(identifiers=ids)
    assert nodes.tolist() == ["a", "b"]
    assert edges["via"].tolist() == ["identifier"]
    assert edges["weight"].tolist() == [pytest.approx(OTHER_IDENTIFIER_WEIGHT)]  # / log2(2)
    _, none = account_graph(identifiers=ids, other_identifier_weight=0.0)
    assert none.empty


# --------------------------------------------------------------------------- detection


def _detect(export: Path, folder: Path, policy: Any = None) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    with EmbeddedStore(folder / "s.duckdb") as store:
        load_export(store, export, rejects_dir=folder / "rejects")
        result = run_detection(store, policy, threads=1)
        sub = store.neighbourhood([NodeRef("Account", "f0")], hops=1)
    return result, sub


def _kind(findings: list[Any], kind: str) -> list[Any]:
    return [f for f in findings if f.kind == kind]


@pytest.fixture(scope="module")
def default_run(variety: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """The store (its folder) of the export detected with the default policy, the
    detection and the neighbourhood of a farm account."""
    folder = tmp_path_factory.mktemp("default-run")
    result, sub = _detect(variety, folder)
    return folder, result, sub


def test_chargebacks_make_a_commission_ring_and_an_imei_pool_an_identity_cluster(
    default_run: tuple[Path, Any, Any],
) -> None:
    _, result, sub = default_run
    rings = _kind(result.findings, "commission_ring")
    assert len(rings) == 1
    ring = rings[0]
    assert set(ring.member_ids) == {*RING, "C", "S"}
    assert "excess_refund_cancel_rate" in {s.name for s in ring.signals}
    assert {r["status"] for r in ring.evidence["orders"]} == {"refunded", "completed"}

    farms = _kind(result.findings, "identity_cluster")
    assert [set(f.member_ids) for f in farms] == [set(FARM)]  # the household is left alone
    shared = {(r["kind"], r["value"]) for r in farms[0].evidence["identifiers"]}
    assert shared == {("device", IMEI), ("cookie", "ck-farm")}
    assert "8 accounts share 1 cookie, 1 device" in farms[0].explanation

    summary = result.run.summary
    assert summary["unmapped"] == {
        "orders.status": {"disputed": DISPUTED},
        "identifiers.kind": {"cookie": 11},
    }
    assert result.run.policy["mapping"] == default_policy().mapping.model_dump()
    # the graph keeps the export's own kinds
    ids = {n.ref.id for n in sub.nodes if n.ref.label == "Identifier"}
    assert ids == {f"imei:{IMEI}", "cookie:ck-farm"}


def test_without_the_mapping_chargebacks_are_no_refunds_and_an_imei_no_device(
    variety: Path, tmp_path: Path
) -> None:
    policy = _policy(
        tmp_path,
        "mapping:\n"
        "  order_statuses: {refunded: [refunded]}\n"
        "  identifier_kinds: {device: [device]}\n",
    )
    result, _ = _detect(variety, tmp_path / "strict", policy)
    # chargebacks are not refunds without the mapping: a ring may still be found by its
    # other signals, never by its refunds
    for ring in _kind(result.findings, "commission_ring"):
        fired = {s.name for s in ring.signals if s.value >= s.threshold}
        assert fired and "excess_refund_cancel_rate" not in fired, ring.signals
    # and the imei is not a device: a farm may still be found by its creation burst
    for farm in _kind(result.findings, "identity_cluster"):
        kinds = {r["kind"] for r in farm.evidence.get("identifiers", [])}
        assert "device" not in kinds, farm.evidence
    unmapped = result.run.summary["unmapped"]
    assert unmapped["orders.status"] == {
        "chargeback": CHARGEBACKS,
        "disputed": DISPUTED,
        "returned": RETURNED,
    }
    assert unmapped["identifiers.kind"] == {"cookie": 11, "imei": 8}
    assert result.run.summary["policy_digest"] != default_policy().digest()


def test_a_zero_weight_for_unmapped_kinds_leaves_the_cookie_out(
    variety: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "mapping: {other_identifier_weight: 0.0}\n")
    result, _ = _detect(variety, tmp_path / "nocookie", policy)
    farms = _kind(result.findings, "identity_cluster")
    assert len(farms) == 1
    assert {r["kind"] for r in farms[0].evidence["identifiers"]} == {"device"}


def test_a_redacted_case_file_hides_identifiers_of_every_kind(
    default_run: tuple[Path, Any, Any],
) -> None:
    folder, result, _ = default_run
    (farm,) = _kind(result.findings, "identity_cluster")
    with EmbeddedStore(folder / "s.duckdb") as store:
        plain = export_case(store, farm.id, who="t", via="test")
        hidden = export_case(store, farm.id, who="t", via="test", redact=True, key="k")

    def contents(data: bytes) -> tuple[bytes, dict[str, Any]]:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            text = b"".join(z.read(n) for n in z.namelist())
            return text, json.loads(z.read("manifest.json"))

    text, _ = contents(plain.data)
    assert IMEI.encode() in text and b"ck-farm" in text
    text, manifest = contents(hidden.data)
    assert IMEI.encode() not in text and b"ck-farm" not in text
    assert {"cookie", "device", "imei"} <= set(manifest["redaction"]["identifiers"])


# --------------------------------------------------------------------------- on Spark


def test_spark_maps_the_export_as_the_local_engine(
    spark: Any, variety: Path, tmp_path: Path
) -> None:
    """The Spark engine reads the export as it is (codes in any case, padded) and maps
    it with the policy: the same queue and the same unmapped values as a local run."""
    from ringscope.engines.spark.detect import detect_export
    from ringscope.jobs.detect import detect_tables
    from ringscope.loaders.pipeline import read_export_tables

    parquet = tmp_path / "parquet"
    parquet.mkdir()
    for name in ("accounts", "orders", "identifiers"):
        frame = read_table(variety / f"{name}.csv").frame
        if name == "orders":
            frame["status"] = frame["status"].str.upper().str.pad(12)  # as some exports write
        frame.to_parquet(parquet / f"{name}.parquet", index=False)
    on_spark = detect_export(spark, str(parquet), default_policy())
    tables = read_export_tables(variety).mapped(default_policy().mapping.value_map())
    local, _ = detect_tables(tables, default_policy(), threads=1)
    assert on_spark.unmapped == tables.unmapped
    assert on_spark.unmapped["orders.status"] == {"disputed": DISPUTED}
    assert {f.kind for f in local} >= {"commission_ring", "identity_cluster"}
    canon = [json.dumps(f.to_dict(), sort_keys=True, default=str) for f in local]
    assert [
        json.dumps(f.to_dict(), sort_keys=True, default=str) for f in on_spark.findings
    ] == canon


def test_the_app_serves_and_redacts_identifiers_of_every_kind(
    default_run: tuple[Path, Any, Any],
) -> None:
    import httpx
    from helpers.app import ServedApp, access_for, auth

    folder, result, _ = default_run
    (farm,) = _kind(result.findings, "identity_cluster")
    cookie = quote("Identifier:cookie:ck-farm", safe="")
    with (
        ServedApp(folder / "s.duckdb", access_for()) as app,
        httpx.Client(base_url=app.url, timeout=60) as c,
    ):
        walk = c.get(f"/api/entities/{cookie}/neighbourhood", headers=auth("test-investigator"))
        assert walk.status_code == 200, walk.text
        assert set(FARM) <= {n["id"] for n in walk.json()["nodes"]}
        # a viewer may not look an identifier up, of whatever kind
        assert c.get(f"/api/entities/{cookie}", headers=auth("test-viewer")).status_code == 403
        for path in (f"/api/findings/{farm.id}", f"/api/findings/{farm.id}/graph"):
            full = c.get(path, headers=auth("test-investigator")).text
            seen = c.get(path, headers=auth("test-viewer")).text
            assert "ck-farm" in full and IMEI in full, path
            assert "ck-farm" not in seen and IMEI not in seen, path
        page = c.get(f"/findings/{farm.id}", headers=auth("test-viewer"))
        assert page.status_code == 200
        assert "ck-farm" not in page.text and IMEI not in page.text


def test_the_bulk_import_labels_identifiers_from_the_whitelist_only(
    variety: Path, tmp_path: Path
) -> None:
    from ringscope.loaders.neo4j_import import prepare_import

    out = tmp_path / "csv"
    report, _ = prepare_import(
        variety, out, columnar_path=tmp_path / "side.duckdb", rejects_dir=tmp_path / "r"
    )
    assert report.rejected == 0
    nodes = out / "nodes_identifiers.csv"
    rows = list(csv.DictReader(nodes.open(encoding="utf-8")))
    labels = {r["kind"]: r[":LABEL"] for r in rows}
    # an imei is a device to the detectors, but the graph keeps the export's kind: no label
    # is ever made from data
    assert labels == {"imei": "Identifier", "cookie": "Identifier", "email": "Identifier"}
    assert f"imei:{IMEI}" in {r["id:ID(Identifier)"] for r in rows}
    # the kinds of the whitelist keep their labels
    small = Path(__file__).resolve().parent / "data" / "small-export"
    side = tmp_path / "side2.duckdb"
    prepare_import(small, tmp_path / "csv2", columnar_path=side, rejects_dir=tmp_path / "r2")
    rows = list(csv.DictReader((tmp_path / "csv2" / "nodes_identifiers.csv").open()))
    labels = {r["kind"]: r[":LABEL"] for r in rows}
    assert labels["device"] == "Identifier;Device" and labels["ip"] == "Identifier;IP"
