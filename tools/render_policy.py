"""Write ringscope/default_policy.yaml from the detectors' own defaults.

Run after changing a detector's parameters: `.venv/bin/python tools/render_policy.py`.
tests/test_policy.py fails while the file and the code disagree.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT
from ringscope.algorithms.identifiers import KIND_WEIGHTS
from ringscope.algorithms.registry import DETECTORS
from ringscope.contract import IDENTIFIER_KIND_ALIASES, ORDER_STATUS_ALIASES

DOCS = {
    "lockstep": "Lockstep engagement (CopyCatch / SynchroTrap): accounts acting on the same "
    "streams within the same short windows, again and again.",
    "dense_blocks": "Dense blocks (FRAUDAR): account x creator engagement and buyer x seller "
    "orders denser than camouflage can explain.",
    "commission_rings": "Commission rings: creators, sellers and buyers acting together, the "
    "buyers ordering through the creators' links and little else, with refunds, shared "
    "identifiers or new accounts beyond the market's own rates.",
    "money_cycles": "Money cycles: money going round a loop of accounts (A pays B pays C pays "
    "A), once or many times, hops minutes to days apart, more coherent than ordinary trade "
    "makes. Parameters: see the docstring of ringscope.algorithms.cycles.",
    "money_flows": "Money flows (laundering typologies): money passed on through accounts once, "
    "hop after hop, amounts conserved: chains, fan-in/out, scatter-gather, gather-scatter "
    "(money that comes back round is money_cycles'). Parameters: see the docstring of "
    "ringscope.algorithms.flows.",
    "shared_identifiers": "Shared identifiers: accounts tied by devices, payment methods, phones, "
    "addresses and IPs used by few accounts.",
    "label_propagation": "Guilt by association: personalised PageRank from investigator labels "
    "(anti-TrustRank from abusive, TrustRank from legit).",
}

HEAD = """\
# ringscope detection policy: which detectors run, and their thresholds, windows and weights.
# Copy this file, change what you need, and pass it with `ringscope detect --policy FILE`.
# A file only needs the keys it changes; everything else keeps the values below.
# Each parameter is documented in its detector's docstring
# (python -m pydoc ringscope.algorithms.<module>).

version: default-2026.12
seed: 0              # every detector is deterministic for a given seed
# Detect on the last N days of activity before the latest event or order in the store
# (engagements, orders, follows; identifiers last seen before then). null: all the data.
# A nightly job usually sets this (e.g. 30): rings that stopped acting then dissolve.
window_days: null

queue:
  # The case stage links the findings (parts) that are one operation into one case
  # (python -m pydoc ringscope.algorithms.queue): parts sharing at least min_shared
  # accounts link when those are >= merge_containment of the smaller part or >= merge_overlap
  # (Jaccard) of both, or when the parts also share a beneficiary, or both are money patterns.
  merge_overlap: 0.5
  merge_containment: 0.5
  min_shared: 2           # one shared account never links two parts
  auxiliary: [dense_blocks, label_propagation]  # join one case each; alone only if they say so
  min_score: 0.0          # findings scoring below this are left out of the queue
  order: score            # the app's default order: score, impact (money at risk) or priority
  impact_weight: 0.5      # priority = (1 - impact_weight) * score + impact_weight * impact index
  dismissed_regrowth: 0.2 # a dismissed network is raised again only when it gains this share
  dismissed_rescore: 0.1  # ... of new members, or its score rises by this much

detectors:
"""


MAPPING_DOC = """\
# What the values of an export mean. Loads keep order statuses and identifier kinds as the
# export gives them (trimmed, lower case); detection maps them here, once, to the statuses and
# kinds detectors know. A value no list names is kept as it is: a `disputed` order is neither
# completed, cancelled nor refunded, and an identifier of an unnamed kind (a `cookie`) weighs
# `other_identifier_weight`. `ringscope load` warns about values these default lists do not name,
# and every run's summary lists, under `unmapped`, the values its policy did not map.
# A file may name only the entries it changes (each entry's list replaces the default one);
# a value may appear under one entry only. Changing the mapping changes the policy's digest.
"""
MAPPING_NOTES = {"phone": "  # contact points one person verifies"}


def render_mapping() -> str:
    """The ``mapping`` block: the contract's aliases, the default weight of other kinds."""
    out = [MAPPING_DOC.rstrip("\n"), "mapping:"]
    for name, table in (
        ("order_statuses", ORDER_STATUS_ALIASES),
        ("identifier_kinds", IDENTIFIER_KIND_ALIASES),
    ):
        out.append(f"  {name}:")
        out += [f"    {k}: [{', '.join(v)}]{MAPPING_NOTES.get(k, '')}" for k, v in table.items()]
    weights = ", ".join(f"{k} {w}" for k, w in KIND_WEIGHTS.items())
    out += [
        "  # a shared identifier of a kind named nowhere above weighs this; the kinds above weigh",
        f"  # {weights} (each discounted by the number of accounts using it)",
        f"  other_identifier_weight: {OTHER_IDENTIFIER_WEIGHT}",
    ]
    return "\n".join(out) + "\n"


def render() -> str:
    head = HEAD.replace("\ndetectors:\n", "\n" + render_mapping() + "\ndetectors:\n")
    out = [head.rstrip("\n")]
    for name, spec in DETECTORS.items():
        out.append(f"  # {DOCS[name]}")
        out += [f"  {name}:", "    enabled: true", "    params:"]
        for k, v in spec.parameters().items():
            value = list(v) if isinstance(v, tuple) else v
            text = yaml.safe_dump(value, default_flow_style=True).strip()
            out.append(f"      {k}: {text.removesuffix('...').strip()}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "ringscope" / "default_policy.yaml"
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
