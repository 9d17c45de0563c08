"""Compare the findings of a run with those of the previous run.

Finding ids hash the member set, so a ring that gains one account gets a new
id. Findings are therefore matched by member overlap: each current finding is
paired with the previous finding it shares the most members with (Jaccard at
least ``min_overlap``, or containment at least ``min_containment``), greedily
from the strongest overlap down, one to one. Paired findings are
``unchanged`` (same members), ``grown`` (more added than removed) or
``shrunk``; unpaired current findings are ``new``; unpaired previous ones
``dissolved``. A paired finding inherits the ``case_id`` of the finding it
continues, so decisions and history follow the network, not the id.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

from ringscope.model import Finding

STATUSES = ("new", "grown", "shrunk", "unchanged", "dissolved")


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a run's diff."""

    status: str
    finding_id: str
    previous_id: str
    case_id: str
    kind: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _status(cur: frozenset[str], prev: frozenset[str]) -> str:
    added, removed = len(cur - prev), len(prev - cur)
    if not added and not removed:
        return "unchanged"
    return "grown" if added > removed else "shrunk"


def diff_findings(
    previous: list[Finding],
    current: list[Finding],
    *,
    min_overlap: float = 0.5,
    min_containment: float = 0.8,
) -> tuple[list[Finding], list[Change]]:
    """Match ``current`` findings to ``previous`` ones and annotate them.

    Returns the current findings with ``status``, ``case_id`` and
    ``previous_id`` set, in their given order, and the list of changes
    (one per current finding, then one per dissolved previous finding).

    Examples
    --------
    >>> from ringscope.model import DetectorInfo, Member
    >>> d = DetectorInfo("x", "1")
    >>> mk = lambda ids: Finding.build(kind="k", score=0.5, explanation="", detector=d,
    ...                                members=[Member(i, "buyer", 1.0) for i in ids])
    >>> old = [mk(["a", "b", "c"]), mk(["x", "y"])]
    >>> new, changes = diff_findings(old, [mk(["a", "b", "c", "d"]), mk(["p", "q"])])
    >>> [(c.status, c.added) for c in changes]
    [('grown', ('d',)), ('new', ()), ('dissolved', ())]
    >>> new[0].case_id == old[0].id
    True
    """
    prev_sets = [frozenset(f.member_ids) for f in previous]
    cur_sets = [frozenset(f.member_ids) for f in current]
    # candidate pairs only among findings sharing an account
    by_account: dict[str, list[int]] = defaultdict(list)
    for j, s in enumerate(prev_sets):
        for a in s:
            by_account[a].append(j)
    candidates: list[tuple[float, float, int, int]] = []
    for i, s in enumerate(cur_sets):
        shared: dict[int, int] = defaultdict(int)
        for a in s:
            for j in by_account.get(a, ()):
                shared[j] += 1
        for j, inter in shared.items():
            jac = inter / len(s | prev_sets[j])
            cont = inter / min(len(s), len(prev_sets[j]))
            if jac >= min_overlap or cont >= min_containment:
                candidates.append((jac, cont, i, j))
    # strongest overlap first; ties by position, which follows the ranked order
    candidates.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    pair: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in candidates:
        if i not in pair and j not in taken:
            pair[i] = j
            taken.add(j)
    out: list[Finding] = []
    changes: list[Change] = []
    for i, f in enumerate(current):
        if i in pair:
            p = previous[pair[i]]
            status = _status(cur_sets[i], prev_sets[pair[i]])
            case_id = p.case_id or p.id
            added = tuple(sorted(cur_sets[i] - prev_sets[pair[i]]))
            removed = tuple(sorted(prev_sets[pair[i]] - cur_sets[i]))
            prev_id = p.id
        else:
            status, case_id, added, removed, prev_id = "new", f.id, (), (), ""
        out.append(dataclasses.replace(f, status=status, case_id=case_id, previous_id=prev_id))
        changes.append(Change(status, f.id, prev_id, case_id, f.kind, added, removed))
    for j, p in enumerate(previous):
        if j not in taken:
            changes.append(Change("dissolved", "", p.id, p.case_id or p.id, p.kind))
    return out, changes


def summarise(changes: list[Change]) -> dict[str, int]:
    """Counts per status, every status present."""
    counts = dict.fromkeys(STATUSES, 0)
    for c in changes:
        counts[c.status] += 1
    return counts
