"""Lockstep engagement detector: a gallery of small named marketplaces with exact results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.lockstep import (
    KIND,
    NAME,
    VERSION,
    detect_lockstep,
    detect_lockstep_tables,
    lockstep_pairs,
)
from ringscope.errors import InputError
from ringscope.model import canonical_json

T0 = pd.Timestamp("2024-05-01T00:00:00Z")
HOUR = 3600


def _streams(n_creators: int = 10, per_creator: int = 8) -> pd.DataFrame:
    """Streams of one hour, one every 45 minutes, round-robin over creators."""
    rows = []
    for i in range(n_creators * per_creator):
        rows.append(
            {
                "stream_id": f"s{i:03d}",
                "creator_id": f"c{i % n_creators}",
                "started_at": T0 + pd.Timedelta(minutes=45 * i),
            }
        )
    return pd.DataFrame(rows).astype({"started_at": "datetime64[us, UTC]"})


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    cols = ["account_id", "stream_id", "kind", "ts", "amount"]
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols}).astype(
            {"ts": "datetime64[us, UTC]", "amount": "float64"}
        )
    df = pd.DataFrame(rows)
    df["amount"] = np.nan
    return df[cols].astype({"ts": "datetime64[us, UTC]", "amount": "float64"})


def _accounts(ids: list[str], young: set[str]) -> pd.DataFrame:
    ref = T0 + pd.Timedelta(days=3)
    return pd.DataFrame(
        {
            "account_id": ids,
            "roles": ["buyer"] * len(ids),
            "created_at": [
                ref - pd.Timedelta(days=5 if a in young else 400 + (hash(a) % 7)) for a in ids
            ],
        }
    ).astype({"created_at": "datetime64[us, UTC]"})


def _noise(rng: np.random.Generator, streams: pd.DataFrame, n: int = 300) -> list[dict]:
    """Ordinary viewers: each visits a few random streams and acts at random moments."""
    rows = []
    starts = streams.set_index("stream_id")["started_at"]
    for i in range(n):
        for s in rng.choice(streams["stream_id"].to_numpy(), size=rng.integers(1, 6)):
            t = starts[s] + pd.Timedelta(seconds=int(rng.integers(0, HOUR)))
            rows.append({"account_id": f"u{i:04d}", "stream_id": s, "kind": "view", "ts": t})
            if rng.random() < 0.5:
                t2 = t + pd.Timedelta(seconds=int(rng.integers(5, 600)))
                rows.append({"account_id": f"u{i:04d}", "stream_id": s, "kind": "like", "ts": t2})
    return rows


def _planted(rng: np.random.Generator, streams: pd.DataFrame) -> list[dict]:
    """12 accounts liking 6 streams of creator c3 within 30 seconds each time."""
    rows = []
    targets = streams[streams["creator_id"] == "c3"].head(6)
    for _, st in targets.iterrows():
        burst = st["started_at"] + pd.Timedelta(seconds=int(rng.integers(60, HOUR - 60)))
        for a in range(12):
            t = burst + pd.Timedelta(seconds=int(rng.integers(0, 30)))
            rows.append(
                {
                    "account_id": f"farm{a:02d}",
                    "stream_id": st["stream_id"],
                    "kind": "like",
                    "ts": t,
                }
            )
    return rows


def _viral(rng: np.random.Generator, streams: pd.DataFrame) -> list[dict]:
    """2,000 accounts arriving on one stream within 3 minutes, once."""
    st = streams.iloc[5]
    return [
        {
            "account_id": f"v{i:04d}",
            "stream_id": st["stream_id"],
            "kind": "view",
            "ts": st["started_at"] + pd.Timedelta(seconds=600 + int(rng.integers(0, 180))),
        }
        for i in range(2000)
    ]


def _fan_club(rng: np.random.Generator, streams: pd.DataFrame) -> list[dict]:
    """50 accounts watching 10 streams of creator c7 at random minutes, liking some."""
    rows = []
    targets = streams[streams["creator_id"] == "c7"].head(10)
    for _, st in targets.iterrows():
        for a in range(50):
            t = st["started_at"] + pd.Timedelta(minutes=int(rng.integers(0, 60)))
            rows.append(
                {"account_id": f"fan{a:02d}", "stream_id": st["stream_id"], "kind": "view", "ts": t}
            )
            if rng.random() < 0.6:
                t2 = t + pd.Timedelta(seconds=int(rng.integers(30, 900)))
                rows.append(
                    {
                        "account_id": f"fan{a:02d}",
                        "stream_id": st["stream_id"],
                        "kind": "like",
                        "ts": t2,
                    }
                )
    return rows


def _households(rng: np.random.Generator, streams: pd.DataFrame) -> list[dict]:
    """Ten households of 3 accounts watching 5 streams together on one screen."""
    rows = []
    sids = streams["stream_id"].to_numpy()
    starts = streams.set_index("stream_id")["started_at"]
    for h in range(10):
        for s in rng.choice(sids, size=5, replace=False):
            t = starts[s] + pd.Timedelta(seconds=int(rng.integers(0, HOUR)))
            for m in range(3):
                rows.append(
                    {
                        "account_id": f"h{h}m{m}",
                        "stream_id": s,
                        "kind": "view",
                        "ts": t + pd.Timedelta(seconds=m),
                    }
                )
    return rows


def _market(*parts: str, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    streams = _streams()
    makers = {
        "noise": _noise,
        "planted": _planted,
        "viral": _viral,
        "fan_club": _fan_club,
        "households": _households,
    }
    rows: list[dict] = []
    for p in parts:
        rows += makers[p](rng, streams)
    ev = _frame(rows)
    ids = sorted(set(ev["account_id"]))
    accounts = _accounts(ids, young={a for a in ids if a.startswith("farm")})
    return ev, streams, accounts


FARM = tuple(f"farm{a:02d}" for a in range(12))


# --------------------------------------------------------------------------- gallery


def test_planted_burst_is_found_exactly() -> None:
    ev, streams, accounts = _market("noise", "planted")
    found = detect_lockstep(ev, streams=streams, accounts=accounts, seed=1)
    assert [f.member_ids for f in found] == [FARM]
    f = found[0]
    assert f.kind == KIND == "engagement_farm"
    assert [b.account_id for b in f.beneficiaries] == ["c3"]
    assert f.detector.name == NAME and f.detector.version == VERSION
    assert f.detector.params["seed"] == 1
    signals = {s.name: s.value for s in f.signals}
    assert signals["distinct_bursts"] == 6
    assert signals["group_size"] == 12
    assert signals["young_account_share"] == 1.0
    assert signals["synchronised_events"] == 72
    assert len(f.evidence["engagements"]) == 72
    assert "12 accounts (12 created in the last 30 days)" in f.explanation
    assert "6 streams" in f.explanation and "creator c3" in f.explanation
    assert f.score > 0.8


def test_viral_stream_is_not_a_farm() -> None:
    ev, streams, accounts = _market("noise", "viral")
    assert detect_lockstep(ev, streams=streams, accounts=accounts, seed=1) == []


def test_fan_club_is_not_a_farm() -> None:
    ev, streams, accounts = _market("noise", "fan_club")
    assert detect_lockstep(ev, streams=streams, accounts=accounts, seed=1) == []


def test_households_are_not_a_farm() -> None:
    ev, streams, accounts = _market("noise", "households")
    assert detect_lockstep(ev, streams=streams, accounts=accounts, seed=1) == []


def test_everything_together_finds_only_the_farm() -> None:
    ev, streams, accounts = _market("noise", "planted", "viral", "fan_club", "households")
    found = detect_lockstep(ev, streams=streams, accounts=accounts, seed=3)
    assert [f.member_ids for f in found] == [FARM]


def test_empty_input() -> None:
    ev = _frame([])
    assert detect_lockstep(ev, streams=_streams()) == []
    assert list(lockstep_pairs(ev)) == []


def test_single_account() -> None:
    rows = [
        {
            "account_id": "a",
            "stream_id": f"s{i:03d}",
            "kind": "like",
            "ts": T0 + pd.Timedelta(hours=i),
        }
        for i in range(10)
    ]
    assert detect_lockstep(_frame(rows), streams=_streams(), seed=0) == []


def test_stagger_keeps_a_burst_across_a_window_boundary_whole() -> None:
    # every burst straddles a boundary of the unshifted grid (x:59 / x+1:00)
    rows = []
    streams = _streams()
    for s in range(5):
        st = streams.iloc[s]
        boundary = st["started_at"] + pd.Timedelta(minutes=20)
        for a in range(8):
            t = boundary + pd.Timedelta(seconds=-10 + 3 * a)
            rows.append(
                {"account_id": f"g{a}", "stream_id": st["stream_id"], "kind": "like", "ts": t}
            )
    found = detect_lockstep(_frame(rows), streams=streams, window_s=60, seed=0)
    assert [f.member_ids for f in found] == [tuple(f"g{a}" for a in range(8))]


# --------------------------------------------------------------------------- invariants


def test_invariants_and_determinism() -> None:
    ev, streams, accounts = _market("noise", "planted", "fan_club", seed=11)
    # a second, smaller farm on another creator
    rng = np.random.default_rng(5)
    extra = []
    for _, st in streams[streams["creator_id"] == "c5"].head(5).iterrows():
        burst = st["started_at"] + pd.Timedelta(seconds=int(rng.integers(0, 3000)))
        for a in range(9):
            extra.append(
                {
                    "account_id": f"zz{a}",
                    "stream_id": st["stream_id"],
                    "kind": "gift",
                    "ts": burst + pd.Timedelta(seconds=int(rng.integers(0, 20))),
                }
            )
    ev = pd.concat([ev, _frame(extra)], ignore_index=True)
    one = detect_lockstep(ev, streams=streams, accounts=accounts, seed=4)
    two = detect_lockstep(
        ev.sample(frac=1.0, random_state=2), streams=streams, accounts=accounts, seed=4
    )
    zz = tuple(f"zz{a}" for a in range(9))
    assert sorted(f.member_ids for f in one) == sorted([FARM, zz])
    assert canonical_json([f.to_dict() for f in one]) == canonical_json([f.to_dict() for f in two])
    keys = [(-f.score, f.id) for f in one]
    assert keys == sorted(keys)
    for f in one:
        assert 0.0 <= f.score <= 1.0
        assert list(f.member_ids) == sorted(f.member_ids)
        assert all(0.0 <= m.score <= 1.0 for m in f.members)
        rows = f.evidence["engagements"]
        assert rows == sorted(rows, key=lambda r: (r["ts"], r["account_id"]))


def test_evidence_is_capped_with_a_count() -> None:
    ev, streams, accounts = _market("noise", "planted")
    found = detect_lockstep(ev, streams=streams, accounts=accounts, max_evidence=10, seed=1)
    assert len(found[0].evidence["engagements"]) == 10
    assert {s.name: s.value for s in found[0].signals}["synchronised_events"] == 72
    row = found[0].evidence["engagements"][0]
    assert set(row) == {"account_id", "stream_id", "creator_id", "kind", "ts"}
    assert row["ts"].endswith("+00:00")


def test_tables_wrapper_and_pairs_iterator() -> None:
    ev, streams, accounts = _market("planted")
    tables = MarketTables(accounts=accounts, streams=streams, engagements=ev)
    assert [f.member_ids for f in detect_lockstep_tables(tables, seed=0)] == [FARM]
    batches = list(lockstep_pairs(ev, window_s=60))
    pairs = pd.concat([b.pairs for b in batches])
    assert (pairs["account_a"] < pairs["account_b"]).all()
    distinct = pairs.drop_duplicates(["account_a", "account_b", "stream_id"])
    assert distinct.groupby(["account_a", "account_b"]).size().eq(6).all()
    assert len(distinct) == 66 * 6


@pytest.mark.parametrize(
    "kwargs",
    [{"window_s": 0}, {"min_group": 1}, {"min_sync_rate": 1.5}, {"max_bucket": 1}],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    ev, streams, _ = _market("planted")
    with pytest.raises(InputError):
        detect_lockstep(ev, streams=streams, **kwargs)  # type: ignore[arg-type]


def test_missing_column() -> None:
    with pytest.raises(InputError, match="engagements lacks column"):
        detect_lockstep(pd.DataFrame({"account_id": ["a"]}), streams=_streams())


def test_partial_participation_is_found() -> None:
    """A farm whose 14 bots each join only half of its 10 bursts (so most bot pairs
    share two or three bursts) is still found whole, among noise and a fan club."""
    rng = np.random.default_rng(21)
    streams = _streams()
    rows = _noise(rng, streams) + _fan_club(rng, streams)
    targets = streams[streams["creator_id"].isin(["c2", "c4"])].head(10)
    bots = [f"pp{a:02d}" for a in range(14)]
    for _, st in targets.iterrows():
        burst = st["started_at"] + pd.Timedelta(seconds=int(rng.integers(700, HOUR - 60)))
        joined = rng.choice(len(bots), size=len(bots) // 2, replace=False)
        for a in joined:
            t = burst + pd.Timedelta(seconds=int(rng.integers(0, 40)))
            rows.append(
                {"account_id": bots[a], "stream_id": st["stream_id"], "kind": "like", "ts": t}
            )
    ev = _frame(rows)
    found = detect_lockstep(ev, streams=streams, seed=0)
    assert len(found) == 1
    members = set(found[0].member_ids)
    # every bot; at most one viewer who happened to act twice within the farm's bursts
    assert set(bots) <= members and len(members - set(bots)) <= 1
    assert {b.account_id for b in found[0].beneficiaries} == {"c2", "c4"}
    signals = {s.name: s.value for s in found[0].signals}
    assert signals["distinct_bursts"] == 10
    assert signals["significance_log10"] >= 20


# --------------------------------------------------------------------------- stream starts


def _start_fans(rng: np.random.Generator, streams: pd.DataFrame) -> list[dict]:
    """40 fans of creator c7 who arrive in the first minutes of its streams (followers are
    notified at the start): each joins nine streams in ten, most within four minutes."""
    rows = []
    for _, st in streams[streams["creator_id"] == "c7"].iterrows():
        for a in range(40):
            if rng.random() < 0.9:
                t = st["started_at"] + pd.Timedelta(seconds=int(min(rng.exponential(150), 1500)))
                rows.append(
                    {
                        "account_id": f"sf{a:02d}",
                        "stream_id": st["stream_id"],
                        "kind": "view",
                        "ts": t,
                    }
                )
    return rows


def _start_farm(rng: np.random.Generator, streams: pd.DataFrame) -> list[dict]:
    """12 accounts liking 6 streams of creator c3 within 30 seconds each time, in the
    first minutes after each stream starts."""
    rows = []
    for _, st in streams[streams["creator_id"] == "c3"].head(6).iterrows():
        burst = st["started_at"] + pd.Timedelta(seconds=int(rng.integers(30, 400)))
        for a in range(12):
            t = burst + pd.Timedelta(seconds=int(rng.integers(0, 30)))
            rows.append(
                {
                    "account_id": f"farm{a:02d}",
                    "stream_id": st["stream_id"],
                    "kind": "like",
                    "ts": t,
                }
            )
    return rows


def test_a_fan_club_arriving_at_every_start_is_not_a_farm() -> None:
    rng = np.random.default_rng(3)
    streams = _streams()
    ev = _frame(_noise(rng, streams) + _start_fans(rng, streams))
    assert detect_lockstep(ev, streams=streams, seed=0) == []
    # the surge recurs at the start of c7's streams: without any grace the fans look synchronised
    assert detect_lockstep(ev, streams=streams, start_grace_s=0, seed=0) != []


def test_a_farm_bursting_just_after_stream_starts_is_found() -> None:
    rng = np.random.default_rng(4)
    streams = _streams()
    ev = _frame(_noise(rng, streams) + _start_fans(rng, streams) + _start_farm(rng, streams))
    found = detect_lockstep(ev, streams=streams, seed=0)
    # c3's streams have no recurring start surge, so the farm's bursts are evidence; c7's
    # fans arriving at every start are still set aside
    assert [f.member_ids for f in found] == [FARM]
    assert {s.name: s.value for s in found[0].signals}["distinct_bursts"] == 6
    # a grace of ten minutes on every stream (surge_level 0) hides all six bursts
    assert detect_lockstep(ev, streams=streams, surge_level=0, seed=0) == []


# ---------------------------------------------------------------- widths, crowds, small farms


def _bots(
    rng: np.random.Generator,
    streams: pd.DataFrame,
    names: list[str],
    creator: str,
    n_streams: int,
    jitter_s: int,
) -> list[dict]:
    """``names`` liking ``n_streams`` streams of ``creator``, each time within ``jitter_s``
    seconds of one moment in the middle of the stream."""
    rows = []
    for _, st in streams[streams["creator_id"] == creator].head(n_streams).iterrows():
        burst = st["started_at"] + pd.Timedelta(seconds=int(rng.integers(900, HOUR - 900)))
        for a in names:
            t = burst + pd.Timedelta(seconds=int(rng.integers(0, jitter_s + 1)))
            rows.append({"account_id": a, "stream_id": st["stream_id"], "kind": "like", "ts": t})
    return rows


def _crowd(rng: np.random.Generator, streams: pd.DataFrame, creator: str, n: int) -> list[dict]:
    """``n`` viewers on every stream of ``creator``, each at a random moment."""
    rows = []
    starts = streams.set_index("stream_id")["started_at"]
    for s in streams.loc[streams["creator_id"] == creator, "stream_id"]:
        for i in range(n):
            t = starts[s] + pd.Timedelta(seconds=int(rng.integers(0, HOUR)))
            rows.append({"account_id": f"p{i:04d}", "stream_id": s, "kind": "view", "ts": t})
    return rows


def test_a_farm_on_a_popular_stream_is_found() -> None:
    """20 bots bursting within a minute on 5 streams of a creator with 600 viewers on each
    of its streams (one every six seconds): found whole, and not one viewer with them."""
    rng = np.random.default_rng(31)
    streams = _streams()
    bots = [f"pop{a:02d}" for a in range(20)]
    rows = _noise(rng, streams) + _crowd(rng, streams, "c5", 600)
    ev = _frame(rows + _bots(rng, streams, bots, "c5", 5, 60))
    found = detect_lockstep(ev, streams=streams, seed=0)
    assert len(found) == 1
    members = set(found[0].member_ids)
    # every bot; at most one viewer who happened to land in two of the bursts (the
    # completion admits accounts at a false discovery rate, not never)
    assert set(bots) <= members and len(members - set(bots)) <= 1
    assert [b.account_id for b in found[0].beneficiaries] == ["c5"]


def test_a_jittered_farm_is_found_at_a_wider_window() -> None:
    """15 bots spreading each burst over four minutes: too slow for one-minute windows,
    seen whole by a wider one."""
    rng = np.random.default_rng(32)
    streams = _streams()
    bots = [f"jit{a:02d}" for a in range(15)]
    ev = _frame(_noise(rng, streams) + _bots(rng, streams, bots, "c6", 6, 240))
    found = detect_lockstep(ev, streams=streams, seed=0)
    assert [f.member_ids for f in found] == [tuple(bots)]
    # with one-minute windows alone the bots rarely share a bucket: no finding
    assert detect_lockstep(ev, streams=streams, max_window_share=0, seed=0) == []


def test_a_small_farm_with_strong_evidence_is_found() -> None:
    """Five young bots liking six streams of one creator within twenty seconds: few, but
    their timing, their single target and their age all say farm."""
    rng = np.random.default_rng(33)
    streams = _streams()
    bots = [f"sm{a}" for a in range(5)]
    ev = _frame(_noise(rng, streams) + _bots(rng, streams, bots, "c8", 6, 20))
    ids = sorted(set(ev["account_id"]))
    accounts = _accounts(ids, young=set(bots))
    found = detect_lockstep(ev, streams=streams, accounts=accounts, seed=0)
    assert [f.member_ids for f in found] == [tuple(bots)]
    # the same group without any second signal asked for is found too; asking for a
    # corroboration nobody can give (p below 1e-300) drops it
    alone = detect_lockstep(ev, streams=streams, corroborate_below=0, seed=0)
    assert [f.member_ids for f in alone] == [tuple(bots)]
    assert detect_lockstep(ev, streams=streams, min_corroboration=301, seed=0) == []


def _follows(names: list[str], creator: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "follower_id": names,
            "creator_id": [creator] * len(names),
            "ts": [T0 - pd.Timedelta(days=30)] * len(names),
        }
    ).astype({"ts": "datetime64[us, UTC]"})


def test_followers_arriving_at_announced_starts_are_not_a_farm() -> None:
    """With the follows table, the fans who follow c7 and arrive at its starts are excused,
    while a farm of non-followers bursting at the starts of c3's streams is found."""
    rng = np.random.default_rng(34)
    streams = _streams()
    fans = [f"sf{a:02d}" for a in range(40)]
    ev = _frame(_noise(rng, streams) + _start_fans(rng, streams) + _start_farm(rng, streams))
    found = detect_lockstep(ev, streams=streams, follows=_follows(fans, "c7"), seed=0)
    assert [f.member_ids for f in found] == [FARM]


def test_flash_sales_in_a_small_market_are_not_a_farm() -> None:
    """A small market of 80 buyers: three flash sales on three creators' streams, each
    drawing 50 of them within one minute. Buyers share two or three sale moments with
    each other, but so does the whole market: the moments are crowded, not selective."""
    rng = np.random.default_rng(35)
    streams = _streams()
    rows = _noise(rng, streams, n=80)
    for s in ("s011", "s024", "s037"):
        t0 = streams.set_index("stream_id").loc[s, "started_at"] + pd.Timedelta(minutes=25)
        for i in rng.choice(80, size=50, replace=False):
            t = t0 + pd.Timedelta(seconds=int(rng.integers(0, 60)))
            rows.append({"account_id": f"u{i:04d}", "stream_id": s, "kind": "like", "ts": t})
    ev = _frame(rows)
    assert detect_lockstep(ev, streams=streams, seed=0) == []
