"""The synthetic marketplace: deterministic, valid against the contract, realistic, and
with every planted abuse kind and hard negative present."""

from __future__ import annotations

import filecmp
import re
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from ringscope.errors import InputError
from ringscope.loaders.pipeline import check_export, export_problems
from ringscope.loaders.synthetic import REFERENCE_NOW, TABLE_NAMES, generate

EVENTS = 30_000
SEED = 3


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("market")
    generate(out, events=EVENTS, seed=SEED)
    return out


@pytest.fixture(scope="module")
def tables(export: Path) -> dict[str, pd.DataFrame]:
    names = (*TABLE_NAMES, "truth")
    return {n: pd.read_csv(export / f"{n}.csv", dtype=str, keep_default_na=False) for n in names}


def _ts(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col.replace("", None), utc=True, format="ISO8601")


def _rings(truth: pd.DataFrame, kind: str) -> Iterator[pd.DataFrame]:
    for _, ring in truth[truth["kind"] == kind].groupby("ring_id"):
        yield ring


def _densest(times: np.ndarray, width: int) -> int:
    """Most of the sorted ``times`` that fit in one window of ``width``."""
    return int((np.searchsorted(times, times + width, side="right") - np.arange(len(times))).max())


# ---------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files(tmp_path: Path, export: Path) -> None:
    again = tmp_path / "again"
    generate(again, events=EVENTS, seed=SEED)
    names = sorted(p.name for p in export.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert len(names) == 10  # eight tables, truth.csv and world.json
    for name in names:
        assert filecmp.cmp(export / name, again / name, shallow=False), name


def test_other_seed_gives_other_files(tmp_path: Path, export: Path) -> None:
    other = tmp_path / "other"
    generate(other, events=EVENTS, seed=SEED + 1)
    for name in ("accounts.csv", "engagements.csv", "orders.csv", "truth.csv"):
        assert not filecmp.cmp(export / name, other / name, shallow=False), name


def test_parquet_is_deterministic_and_loads(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ra = generate(a, events=5_000, seed=7, fmt="parquet")
    generate(b, events=5_000, seed=7, fmt="parquet")
    assert ra.fmt == "parquet"
    for name in TABLE_NAMES:
        assert filecmp.cmp(a / f"{name}.parquet", b / f"{name}.parquet", shallow=False), name
    assert (a / "truth.csv").exists()
    report = check_export(a)
    assert not report.failed
    assert report.rejected == 0
    assert report.tables["engagements"].loaded == 5_000


def test_other_format_of_a_table_is_replaced(tmp_path: Path) -> None:
    generate(tmp_path, events=2_000, seed=1, fmt="parquet")
    generate(tmp_path, events=2_000, seed=1, fmt="csv")
    assert not list(tmp_path.glob("*.parquet"))
    assert export_problems(tmp_path) == []


# ---------------------------------------------------------------------- the contract


def test_export_passes_the_loader_with_zero_rejects(export: Path) -> None:
    report = check_export(export)
    assert not report.failed
    assert report.rejected == 0
    assert set(report.tables) >= set(TABLE_NAMES)
    assert report.tables["engagements"].loaded == EVENTS
    assert export_problems(export) == []


def test_small_marketplace_is_complete(tmp_path: Path) -> None:
    report = generate(tmp_path, events=10_000, seed=0)
    assert report.events == 10_000
    assert report.fmt == "csv"
    assert export_problems(tmp_path) == []
    for kind in ("engagement_farm", "commission_ring", "incentive_farm", "money_cycle"):
        assert report.rings[kind] >= 2, kind
    for kind in ("household", "carrier_ip", "viral_stream", "flash_sale", "fan_club"):
        assert report.rings[kind] >= 1, kind
    accounts = pd.read_csv(tmp_path / "accounts.csv")
    assert 500 <= len(accounts) <= 5_000


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="events"):
        generate(tmp_path, events=10)
    with pytest.raises(InputError, match="seed"):
        generate(tmp_path, seed=-1)
    with pytest.raises(InputError, match="fmt"):
        generate(tmp_path, fmt="xlsx")  # type: ignore[arg-type]


def test_timestamps_fall_before_the_reference_now(tables: dict[str, pd.DataFrame]) -> None:
    now = pd.Timestamp(REFERENCE_NOW)
    for name, cols in {
        "accounts": ["created_at"],
        "streams": ["started_at", "ended_at"],
        "engagements": ["ts"],
        "orders": ["ts", "refunded_at"],
        "follows": ["ts"],
        "identifiers": ["first_seen", "last_seen"],
        "labels": ["decided_at"],
        "affiliations": ["since"],
    }.items():
        for col in cols:
            values = _ts(tables[name][col]).dropna()
            assert values.max() < now, (name, col)
            assert values.min() >= pd.Timestamp("2019-01-01", tz="UTC"), (name, col)


def test_accounts_exist_before_they_act(tables: dict[str, pd.DataFrame]) -> None:
    created = _ts(tables["accounts"].set_index("account_id")["created_at"])
    eng = tables["engagements"]
    first = _ts(eng["ts"]).groupby(eng["account_id"].to_numpy()).min()
    assert (created.reindex(first.index) <= first).all()
    o = tables["orders"]
    first_order = _ts(o["ts"]).groupby(o["buyer_id"].to_numpy()).min()
    assert (created.reindex(first_order.index) <= first_order).all()
    refunded = o[o["status"] == "refunded"]
    assert (_ts(refunded["refunded_at"]) > _ts(refunded["ts"])).all()
    assert (o.loc[o["status"] != "refunded", "refunded_at"] == "").all()


def test_nothing_but_behaviour_tells_planted_accounts_apart(
    tables: dict[str, pd.DataFrame],
) -> None:
    accounts = tables["accounts"]
    assert accounts["account_id"].str.fullmatch(r"a[0-9a-f]{12}").all()
    truth = tables["truth"]
    abuse = truth[~truth["ring_id"].str.startswith("hn-")]
    # planted accounts are spread over the file, not appended at its end
    pos = np.flatnonzero(accounts["account_id"].isin(set(abuse["account_id"])).to_numpy())
    assert 0.3 < pos.mean() / len(accounts) < 0.7
    # ring ids appear only in truth.csv
    ring_ids = set(truth["ring_id"])
    for name in TABLE_NAMES:
        for col in tables[name].columns:
            assert not ring_ids & set(tables[name][col]), (name, col)
    assert set(truth["account_id"]) <= set(accounts["account_id"])


def test_roles_follow_activity(tables: dict[str, pd.DataFrame]) -> None:
    roles = tables["accounts"].set_index("account_id")["roles"]
    o = tables["orders"]
    assert roles.reindex(o["buyer_id"]).str.contains("buyer").all()
    assert roles.reindex(o["seller_id"]).str.contains("seller").all()
    assert roles.reindex(tables["streams"]["creator_id"]).str.contains("creator").all()
    attributed = o[o["creator_id"] != ""]
    assert (attributed["commission"].astype(float) <= attributed["amount"].astype(float)).all()


# ---------------------------------------------------------------------- a realistic market


def test_creator_audiences_are_heavy_tailed(tables: dict[str, pd.DataFrame]) -> None:
    eng = tables["engagements"].merge(tables["streams"][["stream_id", "creator_id"]])
    views = eng[eng["kind"] == "view"].groupby("creator_id").size().sort_values(ascending=False)
    top = views.head(max(1, len(views) // 10)).sum() / views.sum()
    assert top > 0.3
    assert views.max() / views.median() > 15
    audience = eng.groupby("creator_id")["account_id"].nunique()
    assert audience.max() / audience.median() > 10


def test_order_values_and_refund_rates(tables: dict[str, pd.DataFrame]) -> None:
    o = tables["orders"]
    truth = tables["truth"]
    abuse = set(truth.loc[~truth["ring_id"].str.startswith("hn-"), "account_id"])
    normal = o[~o["buyer_id"].isin(abuse)]
    rates = normal["status"].value_counts(normalize=True)
    assert 0.035 <= rates["refunded"] <= 0.065
    assert 0.03 <= rates["cancelled"] <= 0.09
    amount = normal["amount"].astype(float)
    assert amount.quantile(0.9) / amount.median() > 2.5
    assert 0.3 < (normal["creator_id"] != "").mean() < 0.8


def test_daily_rhythm(tables: dict[str, pd.DataFrame]) -> None:
    hours = _ts(tables["engagements"]["ts"]).dt.hour
    local = (hours + 8) % 24
    evening = local.between(18, 23).mean()
    night = local.between(2, 6).mean()
    assert evening > 3 * night


def test_accounts_are_created_over_years(tables: dict[str, pd.DataFrame]) -> None:
    years = _ts(tables["accounts"]["created_at"]).dt.year
    assert years.nunique() >= 6


# ---------------------------------------------------------------------- planted abuse


def test_engagement_farms(tables: dict[str, pd.DataFrame]) -> None:
    truth, eng = tables["truth"], tables["engagements"]
    eng = eng.merge(tables["streams"][["stream_id", "creator_id"]])
    eng["t"] = _ts(eng["ts"])
    farms = list(_rings(truth, "engagement_farm"))
    assert len(farms) >= 3
    assert max((r["role"] == "bot").sum() for r in farms) >= 10
    for ring in farms:
        bots = set(ring.loc[ring["role"] == "bot", "account_id"])
        targets = set(ring.loc[ring["role"] == "creator", "account_id"])
        assert targets
        hits = eng[eng["account_id"].isin(bots) & eng["creator_id"].isin(targets)]
        views = hits[hits["kind"] == "view"]
        # bursts: many bots within two minutes, each bot in only some bursts
        per_stream = views.groupby("stream_id")["account_id"].nunique()
        busiest = per_stream.idxmax()
        t = np.sort(views.loc[views["stream_id"] == busiest, "t"].astype("int64").to_numpy())
        assert _densest(t, 121 * 10**6) >= 0.3 * len(bots)
        joined = views.groupby("account_id")["stream_id"].nunique()
        assert joined.min() < views["stream_id"].nunique()
        # camouflage: the bots also watch other creators
        assert eng[eng["account_id"].isin(bots) & ~eng["creator_id"].isin(targets)].shape[0] > 0


def test_commission_rings(tables: dict[str, pd.DataFrame]) -> None:
    truth, o = tables["truth"], tables["orders"]
    rings = list(_rings(truth, "commission_ring"))
    sizes = sorted((r["role"] == "buyer").sum() for r in rings)
    assert any(5 <= s <= 10 for s in sizes)
    assert max(sizes) > 10
    bad = []
    ids = tables["identifiers"]
    for ring in rings:
        creator = ring.loc[ring["role"] == "creator", "account_id"].item()
        seller = ring.loc[ring["role"] == "seller", "account_id"].item()
        buyers = set(ring.loc[ring["role"] == "buyer", "account_id"])
        ro = o[o["buyer_id"].isin(buyers) & (o["creator_id"] == creator)]
        assert (ro["seller_id"] == seller).all()
        assert set(ro["buyer_id"]) == buyers
        assert (ro["commission"].astype(float) > 0).all()
        bad.append((ro["status"] != "completed").mean())
        shared = ids[ids["account_id"].isin(buyers) & (ids["kind"] == "payment")]
        assert shared.groupby("value")["account_id"].nunique().max() >= 2
        aff = tables["affiliations"]
        assert ((aff["creator_id"] == creator) & (aff["seller_id"] == seller)).sum() == 1
    assert max(bad) > 0.3


def test_incentive_farms(tables: dict[str, pd.DataFrame]) -> None:
    truth, o, ids = tables["truth"], tables["orders"], tables["identifiers"]
    farms = list(_rings(truth, "incentive_farm"))
    assert len(farms) >= 2
    for ring in farms:
        accs = set(ring["account_id"])
        mine = o[o["buyer_id"].isin(accs)]
        assert mine.groupby("buyer_id").size().max() == 1
        assert len(mine) == len(accs)
        assert (mine["amount"].astype(float) <= 15).all()
        devices = ids[ids["account_id"].isin(accs) & (ids["kind"] == "device")]
        assert devices["value"].nunique() <= 3


def test_money_cycles(tables: dict[str, pd.DataFrame]) -> None:
    truth, o = tables["truth"], tables["orders"]
    roles = tables["accounts"].set_index("account_id")["roles"]
    cycles = list(_rings(truth, "money_cycle"))
    assert len(cycles) >= 2
    for ring in cycles:
        accs = set(ring["account_id"])
        inner = o[o["buyer_id"].isin(accs) & o["seller_id"].isin(accs)]
        g = nx.DiGraph(list(zip(inner["buyer_id"], inner["seller_id"], strict=True)))
        assert any(set(c) == accs for c in nx.simple_cycles(g))
        assert roles.reindex(list(accs)).str.contains("buyer").all()
        assert roles.reindex(list(accs)).str.contains("seller").all()


# ---------------------------------------------------------------------- hard negatives


def test_households(tables: dict[str, pd.DataFrame]) -> None:
    truth, ids = tables["truth"], tables["identifiers"]
    homes = truth[truth["kind"] == "household"]
    sizes = homes.groupby("ring_id").size()
    assert len(sizes) >= 20
    assert sizes.between(2, 5).all()
    assert homes["ring_id"].str.fullmatch(r"hn-household-\d+").all()
    devices = ids[ids["kind"] == "device"]
    for _, ring in list(homes.groupby("ring_id"))[:10]:
        shared = devices[devices["account_id"].isin(set(ring["account_id"]))]
        assert shared.groupby("value")["account_id"].nunique().max() == len(ring)


def test_shared_ips(tables: dict[str, pd.DataFrame]) -> None:
    truth, ids = tables["truth"], tables["identifiers"]
    ips = ids[ids["kind"] == "ip"].groupby("value")["account_id"].nunique()
    carriers = truth[truth["kind"] == "carrier_ip"].groupby("ring_id").size()
    assert carriers.max() >= 300
    assert ips.max() >= 300
    biggest_ring = max(r["kind"].size for r in _rings(truth, "engagement_farm"))
    assert carriers.min() > 5 * biggest_ring or carriers.min() >= 300
    assert (truth["kind"] == "carrier_ip_campus").any()
    assert (truth["kind"] == "carrier_ip_public_wifi").any()


def test_legit_bursts(tables: dict[str, pd.DataFrame]) -> None:
    truth, eng, o = tables["truth"], tables["engagements"], tables["orders"]
    eng = eng.assign(t=_ts(eng["ts"]))
    viral = truth[truth["kind"] == "viral_stream"]
    assert len(viral) >= 200
    views = eng[(eng["kind"] == "view") & eng["account_id"].isin(set(viral["account_id"]))]
    stream = views["stream_id"].value_counts().idxmax()
    arrive = views[views["stream_id"] == stream].groupby("account_id")["t"].min()
    assert len(arrive) >= 0.9 * len(viral)
    window = arrive.quantile(0.9) - arrive.quantile(0.05)
    assert window <= pd.Timedelta(minutes=15)

    sale = truth[truth["kind"] == "flash_sale"]
    bought = o[o["buyer_id"].isin(set(sale["account_id"]))]
    product = bought["product_id"].value_counts().idxmax()
    same = bought[bought["product_id"] == product]
    assert len(same) >= 30
    t = np.sort(_ts(same["ts"]).astype("int64").to_numpy())
    assert _densest(t, 60 * 10**6) >= 30

    fans = truth[truth["kind"] == "fan_club"]
    assert fans.groupby("ring_id").size().min() >= 20


def test_labels_are_a_noisy_sample_not_the_truth(tables: dict[str, pd.DataFrame]) -> None:
    labels, truth = tables["labels"], tables["truth"]
    abuse = truth[~truth["ring_id"].str.startswith("hn-")]
    planted = set(abuse["account_id"])
    bad = set(labels.loc[labels["label"] == "abusive", "subject_id"])
    good = set(labels.loc[labels["label"] == "legit", "subject_id"])
    assert len(good) >= 5
    assert not bad & good
    # right and wrong decisions both ways
    assert bad & planted and bad - planted
    assert good - planted and good & planted
    # never every member of a ring
    for _, ring in abuse.groupby("ring_id"):
        assert not set(ring["account_id"]) <= bad


def test_truth_kinds_and_roles(tables: dict[str, pd.DataFrame]) -> None:
    truth = tables["truth"]
    roles = truth.groupby("kind")["role"].unique().map(set).to_dict()
    assert roles["engagement_farm"] == {"bot", "creator"}
    assert roles["commission_ring"] == {"creator", "seller", "buyer"}
    assert roles["incentive_farm"] == {"buyer"}
    assert roles["money_cycle"] == {"member"}
    for kind in ("household", "carrier_ip", "viral_stream", "flash_sale", "fan_club"):
        assert roles[kind] == {"member"}
        assert truth.loc[truth["kind"] == kind, "ring_id"].str.startswith(f"hn-{kind}-").all()
    abuse_ids = truth.loc[~truth["ring_id"].str.startswith("hn-"), "ring_id"]
    assert abuse_ids.map(lambda r: re.fullmatch(r"(ef|cr|if|mc)-\d{4}", r) is not None).all()
