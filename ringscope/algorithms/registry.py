"""Every detector the detection run knows, by the name the policy file uses.

Each entry binds a detector function to the tables it reads from
:class:`~ringscope.algorithms.base.MarketTables` (and the weight the tables
give identifiers of kinds detectors do not know). Its policy parameters are
the function's keyword-only parameters other than tables, the tables' other
fields (``as_of``, ``other_identifier_weight``) and ``seed``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from ringscope.algorithms import (
    commission,
    cycles,
    dense,
    flows,
    identifiers,
    linkanalysis,
    lockstep,
)
from ringscope.algorithms.base import MarketTables
from ringscope.model import Finding

_TABLE_ARGS = {f.name for f in fields(MarketTables)} | {"as_of", "seed"}


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    version: str
    function: Callable[..., list[Finding]]
    call: Callable[[MarketTables, dict[str, Any], int], list[Finding]]

    def parameters(self) -> dict[str, Any]:
        """Policy parameters with their defaults."""
        return {
            name: p.default
            for name, p in inspect.signature(self.function).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _TABLE_ARGS
        }

    def run(self, tables: MarketTables, params: dict[str, Any], seed: int) -> list[Finding]:
        return self.call(tables, dict(params), seed)


def _lockstep(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return lockstep.detect_lockstep(
        t.engagements,
        streams=t.streams,
        accounts=t.accounts,
        follows=t.follows,
        as_of=t.reference_time(),
        seed=seed,
        **p,
    )


def _dense(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return dense.detect_dense_blocks(
        t.engagements,
        t.orders,
        streams=t.streams,
        accounts=t.accounts,
        as_of=t.reference_time(),
        seed=seed,
        **p,
    )


def _commission(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return commission.detect_commission_rings(
        t.orders,
        accounts=t.accounts,
        identifiers=t.identifiers,
        affiliations=t.affiliations,
        as_of=t.reference_time(),
        other_identifier_weight=t.other_identifier_weight,
        seed=seed,
        **p,
    )


def _cycles(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return cycles.detect_money_cycles(
        t.orders, accounts=t.accounts, as_of=t.reference_time(), seed=seed, **p
    )


def _flows(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return flows.detect_money_flows(
        t.orders, accounts=t.accounts, as_of=t.reference_time(), seed=seed, **p
    )


def _identifiers(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return identifiers.detect_shared_identifiers(
        t.identifiers,
        accounts=t.accounts,
        orders=t.orders,
        as_of=t.reference_time(),
        other_identifier_weight=t.other_identifier_weight,
        seed=seed,
        **p,
    )


def _guilt(t: MarketTables, p: dict[str, Any], seed: int) -> list[Finding]:
    return linkanalysis.detect_guilt_by_association(
        t.labels,
        identifiers=t.identifiers,
        orders=t.orders,
        engagements=t.engagements,
        other_identifier_weight=t.other_identifier_weight,
        seed=seed,
        **p,
    )


DETECTORS: dict[str, DetectorSpec] = {
    s.name: s
    for s in (
        DetectorSpec(lockstep.NAME, lockstep.VERSION, lockstep.detect_lockstep, _lockstep),
        DetectorSpec(dense.NAME, dense.VERSION, dense.detect_dense_blocks, _dense),
        DetectorSpec(
            commission.NAME, commission.VERSION, commission.detect_commission_rings, _commission
        ),
        DetectorSpec(cycles.NAME, cycles.VERSION, cycles.detect_money_cycles, _cycles),
        DetectorSpec(flows.NAME, flows.VERSION, flows.detect_money_flows, _flows),
        DetectorSpec(
            identifiers.NAME,
            identifiers.VERSION,
            identifiers.detect_shared_identifiers,
            _identifiers,
        ),
        DetectorSpec(
            linkanalysis.NAME,
            linkanalysis.VERSION,
            linkanalysis.detect_guilt_by_association,
            _guilt,
        ),
    )
}
