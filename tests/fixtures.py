"""Shared test data builders (no pytest fixtures here: those live in conftest.py).

Each area keeps its builders in its own clearly marked section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

# =========================================================================== Money
# Orders as money hops over ordinary shopping, for the money detectors (cycles, flows).

T0 = pd.Timestamp("2026-09-01", tz="UTC")
#: payer, payee, amount, hours after ``T0``
Hop = tuple[str, str, float, float]


def money_orders(hops: list[Hop]) -> pd.DataFrame:
    """A normalised ``orders`` table: one completed order per hop (the payer buys)."""
    return pd.DataFrame(
        {
            "order_id": [f"o{i:06d}" for i in range(len(hops))],
            "buyer_id": [h[0] for h in hops],
            "seller_id": [h[1] for h in hops],
            "product_id": "p",
            "amount": [float(h[2]) for h in hops],
            "status": "completed",
            "ts": (T0 + pd.to_timedelta([h[3] for h in hops], unit="h")).astype(
                "datetime64[us, UTC]"
            ),
            "creator_id": None,
            "commission": float("nan"),
        }
    )


def ordinary_trade(seed: int = 0, restocks: int = 60) -> list[Hop]:
    """30 days of shopping: 400 buyers, 15 shops of uneven popularity, amounts ~ 25.

    The shops also buy from each other ``restocks`` times (at the seller's price), as
    sellers restocking do: their trade closes ordinary loops.
    """
    rng = np.random.default_rng(seed)
    n = 3000
    pop = rng.lognormal(0.0, 1.0, 15)
    shop = rng.choice(15, size=n, p=pop / pop.sum())
    buyer = rng.choice(400, size=n, p=(w := rng.lognormal(0, 1, 400)) / w.sum())
    price = np.round(rng.lognormal(np.log(25.0), 0.8, 15), 2)
    qty = 1 + (rng.random(n) < 0.2)
    hours = rng.uniform(0, 30 * 24, n)
    hops: list[Hop] = [
        (f"b{b:03d}", f"s{s:02d}", float(price[s] * q), float(h))
        for b, s, q, h in zip(buyer, shop, qty, hours, strict=True)
    ]
    for _ in range(restocks):
        a, b = rng.choice(15, 2, replace=False)
        hops.append((f"s{a:02d}", f"s{b:02d}", float(price[b]), float(rng.uniform(0, 720))))
    return hops


def gallery_orders(
    background: list[Hop],
    planted: Iterable[tuple[list[Hop], object, object]],
    look_alikes: Iterable[Callable[[], list[Hop]]] = (),
) -> pd.DataFrame:
    """The orders of a gallery: ``background`` trade, every planted entry's hops (the
    first item of each ``(hops, members, ...)``) and every look-alike's."""
    hops = list(background)
    for entry in planted:
        hops += entry[0]
    for make in look_alikes:
        hops += make()
    return money_orders(hops)
