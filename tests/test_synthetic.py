"""The synthetic marketplace: deterministic, valid against the contract, realistic, and
with every planted abuse kind and hard negative present."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ringscope.cli import app
from ringscope.errors import InputError
from ringscope.loaders.pipeline import check_export, export_problems
from ringscope.loaders.synthetic import (
    FLOW_TYPOLOGIES,
    REFERENCE_NOW,
    TABLE_NAMES,
    GenerateReport,
    WorldParams,
    generate,
)

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


# ---------------------------------------------------------------------- drawn worlds
# Every parameter drawn from a seed; the market is cut to at most SMALL buyers (the draws
# themselves are untouched) so that two dozen worlds generate in seconds.

SMALL = 2_500
SEEDS = range(24)
ABUSE_KINDS = ("engagement_farm", "commission_ring", "incentive_farm", "money_cycle")
LOOKALIKES = (
    "household",
    "carrier_ip",
    "carrier_ip_campus",
    "carrier_ip_public_wifi",
    "viral_stream",
    "flash_sale",
    "fan_club",
)


def small_world(seed: int) -> WorldParams:
    world = WorldParams.random(seed)
    return world.resized(SMALL) if world.buyers > SMALL else world


Drawn = Callable[[int], tuple[Path, GenerateReport]]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Drawn:
    """The export of the small drawn world of a seed, generated once."""
    made: dict[int, tuple[Path, GenerateReport]] = {}

    def get(seed: int) -> tuple[Path, GenerateReport]:
        if seed not in made:
            out = tmp_path_factory.mktemp(f"world-{seed}")
            made[seed] = (out, generate(out, seed=seed, world=small_world(seed)))
        return made[seed]

    return get


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)


def _abuse_truth(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[~truth["ring_id"].str.startswith("hn-")]


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_world_passes_the_loader_and_keeps_its_promises(seed: int, drawn: Drawn) -> None:
    folder, report = drawn(seed)
    check = check_export(folder)
    assert not check.failed
    assert check.rejected == 0
    assert report.world == small_world(seed).to_dict()
    truth = _read(folder, "truth")
    # every planted kind, every ring non-empty, planted accounts never hard negatives
    for kind in (*ABUSE_KINDS, "money_flow"):
        assert report.rings[kind] >= 1, kind
        assert truth.loc[truth["kind"] == kind, "ring_id"].nunique() == report.rings[kind]
    assert report.rings["money_flow"] >= len(FLOW_TYPOLOGIES)
    assert truth.groupby("ring_id").size().min() >= 1
    abuse = _abuse_truth(truth)
    lookalike = truth[truth["ring_id"].str.startswith("hn-")]
    assert not set(abuse["account_id"]) & set(lookalike["account_id"])
    assert set(truth["account_id"]) <= set(_read(folder, "accounts")["account_id"])
    # accounts exist before they act
    created = _ts(_read(folder, "accounts").set_index("account_id")["created_at"])
    eng = _read(folder, "engagements")
    first = _ts(eng["ts"]).groupby(eng["account_id"].to_numpy()).min()
    assert (created.reindex(first.index) <= first).all()
    orders = _read(folder, "orders")
    first = _ts(orders["ts"]).groupby(orders["buyer_id"].to_numpy()).min()
    assert (created.reindex(first.index) <= first).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_drawn_labels_are_noisy_decisions_not_the_truth(seed: int, drawn: Drawn) -> None:
    folder, report = drawn(seed)
    labels = _read(folder, "labels")
    if report.world["labels"] == "none":
        assert labels.empty
        return
    abuse = _abuse_truth(_read(folder, "truth"))
    planted = set(abuse["account_id"])
    bad = set(labels.loc[labels["label"] == "abusive", "subject_id"])
    good = set(labels.loc[labels["label"] == "legit", "subject_id"])
    assert bad and good and not bad & good
    assert not bad <= planted, "some ordinary account labelled abusive"
    assert good & planted, "some planted abuser labelled legit"
    for _, ring in abuse.groupby("ring_id"):
        assert not set(ring["account_id"]) <= bad, "a whole ring labelled"


def test_drawn_worlds_cover_the_ranges(drawn: Drawn) -> None:
    """Across the seeds: high prevalence, tiny and huge rings, farms on top creators,
    bursts from seconds to minutes, rings over several creators, labels on and off."""
    prevalence, smallest, largest, top_targets, windows = [], [], [], 0, []
    multi_creator = labels_off = zoned = 0
    for seed in SEEDS:
        folder, report = drawn(seed)
        truth, accounts = _read(folder, "truth"), _read(folder, "accounts")
        abuse = _abuse_truth(truth)
        planted = abuse[~((abuse["kind"] == "engagement_farm") & (abuse["role"] == "creator"))]
        # abuser_share is the rings' prevalence; money flows come on top
        rings = planted[planted["kind"] != "money_flow"]
        prevalence.append(rings["account_id"].nunique() / len(accounts))
        sizes = planted.groupby("ring_id")["account_id"].nunique()
        smallest.append(sizes.min())
        largest.append(sizes.max())
        # farms on creators in the top decile of audience
        eng = pd.read_csv(folder / "engagements.csv", usecols=["account_id", "stream_id", "ts"])
        streams = _read(folder, "streams").set_index("stream_id")["creator_id"]
        eng["creator_id"] = streams.reindex(eng["stream_id"]).to_numpy()
        audience = eng.groupby("creator_id")["account_id"].nunique()
        top = set(audience[audience >= audience.quantile(0.9)].index)
        targets = abuse[(abuse["kind"] == "engagement_farm") & (abuse["role"] == "creator")]
        top_targets += bool(set(targets["account_id"]) & top)
        cr = abuse[(abuse["kind"] == "commission_ring") & (abuse["role"] == "creator")]
        multi_creator += bool((cr.groupby("ring_id").size() >= 2).any())
        labels_off += report.world["labels"] == "none"
        windows.append(report.world["farm_window_max"])
        zoned += bool(eng["ts"].str.contains(r"[+-]\d\d:\d\d$").any())
    assert max(prevalence) >= 0.2
    assert min(prevalence) <= 0.02  # at least one ring of each kind, even in 2,500 buyers
    assert min(smallest) <= 3
    assert max(largest) >= 500
    assert top_targets >= 1
    assert multi_creator >= 1
    assert 1 <= labels_off < len(SEEDS)
    assert min(windows) <= 60 and max(windows) >= 600
    assert zoned >= 1


def test_random_draws_span_their_documented_ranges() -> None:
    """Each parameter, over many seeds, reaches near both ends of its range."""
    worlds = [WorldParams.random(s) for s in range(400)]
    ranges = {
        "buyers": (2_000, 500_000),
        "span_days": (7, 120),
        "abuser_share": (0.002, 0.25),
        "events_per_account": (3, 20),
        "farm_size_min": (3, 30),
        "farm_size_max": (20, 1_000),
        "farm_window_min": (1, 60),
        "farm_window_max": (1, 1_200),
        "farm_targets_max": (1, 6),
        "commission_size_max": (6, 1_000),
        "commission_creators_max": (1, 5),
        "commission_sellers_max": (1, 3),
        "cycle_length_min": (3, 5),
        "cycle_length_max": (3, 12),
        "cycle_rounds_min": (1, 3),
        "cycle_rounds_max": (1, 10),
        "proxy_accounts_max": (2, 3_000),
        "household_size_max": (3, 8),
        "fresh_days": (1, 365),
        "label_abuser_share": (0.005, 0.2),
    }
    for name, (lo, hi) in ranges.items():
        values = np.array([getattr(w, name) for w in worlds], dtype=float)
        assert values.min() >= lo and values.max() <= hi, name
        # within 10% of each end of the range (on a log scale for wide ranges)
        scale = np.log if hi / lo > 20 else (lambda x: x)
        width = scale(hi) - scale(lo)
        assert scale(values.min()) - scale(lo) <= 0.1 * width, name
        assert scale(hi) - scale(values.max()) <= 0.1 * width, name
    assert {w.labels for w in worlds} == {"none", "sample"}
    assert len({w.utc_offset_hours for w in worlds}) >= 10
    assert any(w.local_time_share > 0.9 for w in worlds)
    assert any(w.local_time_share == 0 for w in worlds)
    for w in worlds:
        assert w.events == round(w.accounts * w.events_per_account)
        assert w.cycle_length_max * w.cycle_hop_max <= w.span_days * 86_400 / 4 + 1


def test_drawn_world_is_byte_identical_again_and_from_its_json(
    tmp_path: Path, drawn: Drawn
) -> None:
    seed = 5
    folder, _ = drawn(seed)
    world = WorldParams.from_dict(json.loads((folder / "world.json").read_text()))
    assert world == small_world(seed)
    again = tmp_path / "again"
    generate(again, seed=seed, world=world)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert filecmp.cmp(folder / name, again / name, shallow=False), name


def test_world_json_round_trips_and_refuses_what_it_does_not_know() -> None:
    for world in (WorldParams.default(), WorldParams.random(11), small_world(3)):
        data = json.loads(json.dumps(world.to_dict()))
        assert WorldParams.from_dict(data) == world
    data = WorldParams.default().to_dict()
    with pytest.raises(InputError, match="unknown world parameter 'farm_colour'"):
        WorldParams.from_dict({**data, "farm_colour": 1})
    with pytest.raises(InputError, match="'span_days' is missing"):
        WorldParams.from_dict({k: v for k, v in data.items() if k != "span_days"})
    with pytest.raises(InputError, match="'buyers' must be an integer"):
        WorldParams.from_dict({**data, "buyers": "many"})
    with pytest.raises(InputError, match="'farm_size_min' must not exceed 'farm_size_max'"):
        WorldParams.from_dict({**data, "farm_size_min": 900.0})
    with pytest.raises(InputError, match="'labels' must be one of"):
        WorldParams.from_dict({**data, "labels": "all"})
    with pytest.raises(InputError, match="'abuser_share' must be"):
        dataclasses.replace(WorldParams.default(), abuser_share=1.5)
    # an int where a float is expected is taken as the float
    assert WorldParams.from_dict({**data, "fresh_days": 60}) == WorldParams.default()


def test_default_world_is_written_and_keeps_every_kind(export: Path) -> None:
    world = json.loads((export / "world.json").read_text())
    assert world == WorldParams.default(EVENTS).to_dict()
    assert world["labels"] == "sample"
    truth = _read(export, "truth")
    for kind in (*ABUSE_KINDS, *LOOKALIKES):
        assert (truth["kind"] == kind).any(), kind


def test_events_follow_the_world(tmp_path: Path) -> None:
    world = small_world(2)
    report = generate(tmp_path, seed=1, world=world)
    assert report.world["buyers"] == world.buyers
    assert report.events >= world.events
    with pytest.raises(InputError, match="differs from the world's"):
        generate(tmp_path, events=world.events + 1, seed=1, world=world)


def test_local_times_are_the_same_instants(tmp_path: Path) -> None:
    """Timestamps written in the market's local time with an explicit offset load as the
    same instants as the UTC ones."""
    base = dataclasses.replace(small_world(4).resized(1_000), utc_offset_hours=-4.5)
    utc, zoned = tmp_path / "utc", tmp_path / "zoned"
    generate(utc, seed=2, world=dataclasses.replace(base, local_time_share=0.0))
    generate(zoned, seed=2, world=dataclasses.replace(base, local_time_share=0.5))
    a, b = _read(utc, "orders"), _read(zoned, "orders")
    assert b["ts"].str.endswith("-04:30").mean() == pytest.approx(0.5, abs=0.1)
    assert (a["ts"].str.endswith("Z")).all()
    assert (_ts(a["ts"]) == _ts(b["ts"])).all()
    assert (_ts(a["refunded_at"]).isna() == _ts(b["refunded_at"]).isna()).all()
    assert check_export(zoned).rejected == 0


def test_rhythm_follows_the_local_time_zone(tmp_path: Path) -> None:
    world = dataclasses.replace(small_world(6), utc_offset_hours=-5.0)
    generate(tmp_path, seed=3, world=world)
    hours = _ts(_read(tmp_path, "engagements")["ts"]).dt.hour
    local = (hours - 5) % 24
    assert local.between(18, 23).mean() > 3 * local.between(2, 6).mean()


def test_prevalence_reaches_its_target(tmp_path: Path) -> None:
    world = dataclasses.replace(WorldParams.default(20_000), abuser_share=0.2)
    report = generate(tmp_path, seed=4, world=world)
    planted = _abuse_truth(_read(tmp_path, "truth"))
    share = planted["account_id"].nunique() / report.rows["accounts"]
    assert 0.18 <= share <= 0.22


def test_sharing_modes(tmp_path: Path) -> None:
    """Farms whose bots each have their own device share none; farms on one pool share
    one or two devices."""
    base = dataclasses.replace(small_world(7), farm_rings=4, mix_farm=1.0, abuser_share=0.05)
    for mode in ("own", "one"):
        weights = {"share_one": 0.0, "share_pools": 0.0, "share_own": 0.0, f"share_{mode}": 1.0}
        out = tmp_path / mode
        generate(out, seed=5, world=dataclasses.replace(base, **weights))
        truth, ids = _read(out, "truth"), _read(out, "identifiers")
        devices = ids[ids["kind"] == "device"]
        for ring in _rings(truth, "engagement_farm"):
            bots = set(ring.loc[ring["role"] == "bot", "account_id"])
            used = devices[devices["account_id"].isin(bots)]
            per_device = used.groupby("value")["account_id"].nunique()
            if mode == "own":
                assert per_device.max() == 1
            else:
                assert used["value"].nunique() <= 2 and per_device.max() >= len(bots) / 2


def test_rings_over_several_creators_and_sellers(tmp_path: Path) -> None:
    world = dataclasses.replace(
        small_world(9), commission_creators_max=4, commission_sellers_max=3, commission_rings=6
    )
    generate(tmp_path, seed=6, world=world)
    truth, orders = _read(tmp_path, "truth"), _read(tmp_path, "orders")
    several = 0
    for ring in _rings(truth, "commission_ring"):
        creators = set(ring.loc[ring["role"] == "creator", "account_id"])
        sellers = set(ring.loc[ring["role"] == "seller", "account_id"])
        buyers = set(ring.loc[ring["role"] == "buyer", "account_id"])
        mine = orders[orders["buyer_id"].isin(buyers) & orders["creator_id"].isin(creators)]
        assert set(mine["seller_id"]) <= sellers
        several += len(creators) > 1 and len(set(mine["creator_id"])) > 1
    assert several >= 1


def test_cli_generates_drawn_and_given_worlds(tmp_path: Path) -> None:
    runner = CliRunner()
    world = small_world(12).resized(1_000)
    path = tmp_path / "world.json"
    path.write_text(json.dumps(world.to_dict()))
    out = tmp_path / "given"
    result = runner.invoke(app, ["generate", str(out), "--world", str(path), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert WorldParams.from_dict(json.loads((out / "world.json").read_text())) == world
    result = runner.invoke(
        app, ["generate", str(tmp_path / "x"), "--world", "random", "--events", "5000"]
    )
    assert result.exit_code == 2
    path.write_text(json.dumps({**world.to_dict(), "speed": 3}))
    result = runner.invoke(app, ["generate", str(tmp_path / "y"), "--world", str(path)])
    assert result.exit_code == 1
    assert "unknown world parameter 'speed'" in result.output


def test_money_flows_are_planted_from_the_world(tmp_path: Path) -> None:
    counts = {f"flow_{t}": 2 for t in FLOW_TYPOLOGIES}
    world = dataclasses.replace(
        small_world(10).resized(1_500),
        **counts,
        span_days=10,
        flow_amount_min=1_000.0,
        flow_amount_max=2_000.0,
    )
    report = generate(tmp_path, seed=7, world=world)
    assert report.rings["money_flow"] == 2 * len(FLOW_TYPOLOGIES)
    assert check_export(tmp_path).rejected == 0
    truth, orders = _read(tmp_path, "truth"), _read(tmp_path, "orders")
    flows = truth[truth["kind"] == "money_flow"]
    typology = flows["ring_id"].str.extract(r"^mf-([a-z_]+)-\d{4}$")[0]
    assert set(typology) == set(FLOW_TYPOLOGIES)
    assert set(flows["role"]) == {"source", "mule", "sink"}
    start = pd.Timestamp(REFERENCE_NOW) - pd.Timedelta(days=10)
    for _, ring in flows.groupby("ring_id"):
        members = set(ring["account_id"])
        moved = orders[orders["buyer_id"].isin(members) & orders["seller_id"].isin(members)]
        assert len(moved) >= 2
        assert (_ts(moved["ts"]) >= start).all()
        assert (moved["amount"].astype(float) <= 2_000.0).all()
