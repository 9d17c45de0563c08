"""One ranked queue across detectors: the parts of one operation linked into a case.

Every detector sees one side of an operation, and some see it in pieces: a farm of
300 bots that share phones in nine pools is one lockstep finding and nine identity
clusters; a ring that orders through three creators is three commission findings;
a long money cycle is several money-flow patterns. :func:`build_queue` is the stage
after the detectors that links such **parts** into one finding, a **case**, that
keeps every part's evidence and signals, and ranks the cases.

Links (on strong evidence only; two parts link when one rule holds):

1. **Shared members.** The parts share at least ``min_shared`` accounts and those
   are at least ``merge_containment`` of the smaller part (or at least
   ``merge_overlap`` of the two together, Jaccard). Why: the smaller part is then
   mostly made of the other's accounts, whatever detector found it, so it is the
   same group seen twice or split. One shared account never links (a household
   tied to a ring by one shared device stays apart), and two big rings that share a
   couple of accounts share far less than half of either.
2. **Shared target.** The parts boost the same creator or sell through the same
   seller (a common beneficiary) *and* share at least ``min_shared`` accounts. Why:
   a ring that works through several creators or sellers is found once per pair,
   with overlapping puppets; two rings that only happen to boost the same creator
   have no accounts in common, and one shared account is not enough.
3. **One money path.** Two money patterns (kinds ``money_cycle`` and
   ``money_flow``) that pass money through at least ``min_shared`` of the same
   accounts. Why: a cycle too long for one pattern is found as several chains
   that meet in the accounts where one hands on to the next.

Shared identifiers and common bursts link through the parts that carry them: the
identity clusters (accounts sharing devices, cards, phones used by few) and the
lockstep groups (accounts acting on the same streams at the same moments). A cluster
of a farm's device pool is made of the farm's bots and links to the farm by rule 1.
On 24 tuning worlds, the parts of one ring that these rules left apart were money
chains with no account in common (7 rings) and one ring whose buyers were split
between a commission finding and an identity cluster sharing one account and only
that account's identifiers: no link through identifiers or bursts would have
joined them without also joining a household to a ring.

Links are transitive among **primary** parts. **Auxiliary** parts
(``auxiliary``: dense blocks and guilt by association, whose groups are the
densest or the closest to labels rather than the members of one operation) never
link two cases together: each joins at most one case, the one holding most of its
accounts when that is at least ``min_shared`` accounts and at least
``merge_containment`` of the part; it then brings its other accounts and its
scores in. An auxiliary part that joins no case is reported on its own only when
its detector says it can stand alone (its signal ``stands_alone`` is 1: a
significant block, a group tied to several abusive labels and to no legit one).

The case's ``kind`` is the kind of the operation: of the kinds of its primary parts,
the most specific (:data:`KIND_SPECIFICITY`: how the abuse works before who is
behind it, e.g. an identity cluster joined to an engagement farm makes an
``engagement_farm`` case) whose parts hold more than half of the case's accounts,
else the kind of its largest primary part. Its id is ``finding_id(kind, members)``.
Its score combines the parts: per detector the highest score of its parts, then
the noisy-or over detectors, ``1 - prod(1 - s_d)``, so independent detectors
agreeing raise confidence while the pieces of one detector do not add up. A
member's score combines the same way, and its role is the one the part scoring
it highest gave it. The case lists its parts (``evidence["parts"]``) and their
number (signal ``case_parts``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ringscope.model import DetectorInfo, Finding, Member, Signal, rank

#: Detectors whose findings join cases without linking them (see the module doc).
AUXILIARY_DETECTORS: tuple[str, ...] = ("dense_blocks", "label_propagation")

#: Finding kinds from the most to the least specific about how the abuse works:
#: operations (timing, commission, money) before operators (shared identifiers),
#: before the density of a graph and the closeness to labels.
KIND_SPECIFICITY: tuple[str, ...] = (
    "engagement_farm",
    "commission_ring",
    "money_cycle",
    "money_flow",
    "identity_cluster",
    "dense_block",
    "dense_orders",
    "label_propagation",
)

#: Kinds of findings made of money passed between accounts (link rule 3).
MONEY_KINDS = frozenset({"money_cycle", "money_flow"})

#: The signal by which an auxiliary detector says a finding may stand on its own.
STANDS_ALONE = "stands_alone"

#: At most this many other parts' explanations are quoted in a case's explanation.
MAX_QUOTED = 3


def merge_findings(a: Finding, b: Finding) -> Finding:
    """Merge two findings into one that keeps the evidence and signals of both."""
    main, other = (a, b) if (a.score, a.id) >= (b.score, b.id) else (b, a)
    members: dict[str, Member] = {m.account_id: m for m in other.members}
    for m in main.members:
        prev = members.get(m.account_id)
        if prev is None or m.score >= prev.score:
            members[m.account_id] = m
    evidence = {k: list(v) for k, v in main.evidence.items()}
    for k, rows in other.evidence.items():
        evidence.setdefault(k, []).extend(r for r in rows if r not in evidence[k])
    seen = {(s.name, s.value) for s in main.signals}
    signals: list[Signal] = list(main.signals)
    signals.extend(s for s in other.signals if (s.name, s.value) not in seen)
    by_name = {(d.name, d.version): d for d in (*other.detectors, *main.detectors)}
    detectors = tuple(by_name[k] for k in sorted(by_name))
    score = 1.0 - (1.0 - main.score) * (1.0 - other.score)
    explanation = main.explanation
    if other.explanation and other.explanation not in explanation:
        explanation = f"{explanation} Also: {other.explanation}"
    return Finding.build(
        kind=main.kind,
        score=score,
        members=list(members.values()),
        beneficiaries=[*main.beneficiaries, *other.beneficiaries],
        signals=signals,
        explanation=explanation,
        detector=main.detector,
        evidence=evidence,
        detectors=detectors,
    )


def stands_alone(f: Finding) -> bool:
    """Whether an auxiliary finding may be reported without a case to join."""
    return any(s.name == STANDS_ALONE and s.value >= 1.0 for s in f.signals)


def _noisy_or(values: Iterable[float]) -> float:
    miss = 1.0
    for v in values:
        miss *= 1.0 - min(1.0, max(0.0, v))
    return 1.0 - miss


class _Links:
    """Union-find over part positions; the smaller position is the root (determinism)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _shared_counts(sets: Sequence[frozenset[str]]) -> dict[tuple[int, int], int]:
    """Accounts shared by every pair of sets that share any, keyed (i, j) with i < j."""
    holders: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for a in s:
            holders[a].append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for hs in holders.values():
        for x in range(len(hs)):
            for y in range(x + 1, len(hs)):
                shared[(hs[x], hs[y])] += 1
    return dict(shared)


def _linked(
    a: Finding,
    b: Finding,
    sa: frozenset[str],
    sb: frozenset[str],
    shared: int,
    *,
    min_shared: int,
    merge_overlap: float,
    merge_containment: float,
) -> bool:
    """Link rules 1-3 of the module doc between two primary parts."""
    if shared < min_shared:
        return False
    if shared / min(len(sa), len(sb)) >= merge_containment:
        return True
    if shared / (len(sa) + len(sb) - shared) >= merge_overlap:
        return True
    bens_a = {x.account_id for x in a.beneficiaries}
    if bens_a and any(x.account_id in bens_a for x in b.beneficiaries):
        return True
    return a.kind in MONEY_KINDS and b.kind in MONEY_KINDS


def _case_kind(primary: list[Finding], members: set[str]) -> str:
    """The kind of the operation (see the module doc)."""
    cover: dict[str, set[str]] = defaultdict(set)
    for p in primary:
        cover[p.kind].update(p.member_ids)
    for kind in KIND_SPECIFICITY:
        if kind in cover and 2 * len(cover[kind] & members) > len(members):
            return kind
    # a kind the table does not rank: the largest part's (ties: the first ranked)
    largest = max(primary, key=lambda p: len(p.members))
    return largest.kind


def _explain(main: Finding, others: list[Finding], n_members: int) -> str:
    """The main part's explanation, then up to :data:`MAX_QUOTED` others', then a count."""
    quoted: list[str] = []
    rest: Counter[str] = Counter()
    for p in others:
        if p.explanation and p.explanation not in main.explanation and len(quoted) < MAX_QUOTED:
            if p.explanation not in quoted:
                quoted.append(p.explanation)
            continue
        rest[p.detector.name] += 1
    names = sorted({p.detector.name for p in (main, *others)})
    text = (
        f"One case of {n_members} accounts from {len(others) + 1} findings of "
        f"{', '.join(names)}. {main.explanation}"
    )
    if quoted:
        text += " Also: " + " Also: ".join(quoted)
    if rest:
        more = ", ".join(f"{n} of {name}" for name, n in sorted(rest.items()))
        text += f" And {sum(rest.values())} more finding(s) of the same accounts ({more})."
    return text


def _part_row(p: Finding) -> dict[str, Any]:
    return {
        "finding_id": p.id,
        "kind": p.kind,
        "detector": p.detector.name,
        "accounts": len(p.members),
        "score": p.score,
    }


def make_case(
    primary: list[Finding], auxiliary: list[Finding], taken: frozenset[str] = frozenset()
) -> Finding:
    """One case from its parts (ranked: the first primary part is the main one).

    See the module doc for its kind, score and members; evidence, signals,
    beneficiaries and detectors are those of every part. Auxiliary parts bring in
    none of the accounts in ``taken`` (those of other cases).
    """
    parts = [*primary, *auxiliary]
    if len(parts) == 1:
        return parts[0]
    main = primary[0] if primary else auxiliary[0]
    members_all: set[str] = set()
    for p in primary:
        members_all.update(p.member_ids)
    for p in auxiliary:
        members_all.update(a for a in p.member_ids if a not in taken)
    kind = _case_kind(primary or auxiliary, members_all)
    best_by_detector: dict[str, float] = {}
    member_score: dict[str, dict[str, float]] = defaultdict(dict)
    member_entry: dict[str, Member] = {}
    for p in parts:
        d = p.detector.name
        best_by_detector[d] = max(best_by_detector.get(d, 0.0), p.score)
        for m in p.members:
            if m.account_id not in members_all:
                continue
            per = member_score[m.account_id]
            per[d] = max(per.get(d, 0.0), m.score)
            prev = member_entry.get(m.account_id)
            if prev is None or m.score > prev.score:
                member_entry[m.account_id] = m
    members = [
        Member(a, member_entry[a].role, round(_noisy_or(member_score[a].values()), 6))
        for a in sorted(members_all)
    ]
    evidence: dict[str, list[dict[str, Any]]] = {}
    for p in parts:
        for k, rows in p.evidence.items():
            have = evidence.setdefault(k, [])
            have.extend(r for r in rows if r not in have)
    evidence["parts"] = [_part_row(p) for p in parts]
    signals: list[Signal] = []
    seen: set[tuple[str, float]] = set()
    for p in parts:
        for s in p.signals:
            if (s.name, s.value) not in seen:
                seen.add((s.name, s.value))
                signals.append(s)
    signals.append(Signal("case_parts", float(len(parts)), 0.0, 0.0))
    by_name: dict[tuple[str, str], DetectorInfo] = {}
    for p in reversed(parts):
        for d_info in p.detectors:
            by_name[(d_info.name, d_info.version)] = d_info
    others = [p for p in parts if p is not main]
    return Finding.build(
        kind=kind,
        score=_noisy_or(best_by_detector.values()),
        members=members,
        beneficiaries=[b for p in parts for b in p.beneficiaries],
        signals=signals,
        explanation=_explain(main, others, len(members)),
        detector=main.detector,
        evidence=evidence,
        detectors=tuple(by_name[k] for k in sorted(by_name)),
    )


def link_cases(
    findings: Iterable[Finding],
    *,
    merge_overlap: float = 0.5,
    merge_containment: float = 0.5,
    min_shared: int = 2,
    auxiliary: Iterable[str] = AUXILIARY_DETECTORS,
) -> list[list[Finding]]:
    """The parts of each case, ranked within each case and cases in order of their
    first part (see the module doc for the rules). Auxiliary parts that join no case
    and may stand alone are cases of their own; the others are left out."""
    aux_names = set(auxiliary)
    parts = rank(list(findings))
    primary = [f for f in parts if f.detector.name not in aux_names]
    extra = [f for f in parts if f.detector.name in aux_names]
    sets = [frozenset(f.member_ids) for f in primary]
    links = _Links(len(primary))
    for (i, j), n in sorted(_shared_counts(sets).items()):
        if _linked(
            primary[i],
            primary[j],
            sets[i],
            sets[j],
            n,
            min_shared=min_shared,
            merge_overlap=merge_overlap,
            merge_containment=merge_containment,
        ):
            links.union(i, j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(primary)):
        groups[links.find(i)].append(i)
    cases = [[primary[i] for i in g] for _, g in sorted(groups.items())]
    case_of: dict[str, int] = {}
    for c, ps in enumerate(cases):
        for p in ps:
            for a in p.member_ids:
                case_of.setdefault(a, c)
    joined: dict[int, list[Finding]] = defaultdict(list)
    alone: list[list[Finding]] = []
    for f in extra:
        held = sorted(
            Counter(case_of[a] for a in f.member_ids if a in case_of).items(),
            key=lambda x: (-x[1], x[0]),
        )
        if (
            held
            and held[0][1] >= min_shared
            and held[0][1] / len(f.members) >= merge_containment
            and (len(held) == 1 or held[1][1] < held[0][1])
        ):
            joined[held[0][0]].append(f)
        elif stands_alone(f):
            alone.append([f])
    return [[*ps, *joined.get(c, [])] for c, ps in enumerate(cases)] + alone


def build_queue(
    findings: Iterable[Finding],
    *,
    merge_overlap: float = 0.5,
    merge_containment: float = 0.5,
    min_score: float = 0.0,
    min_shared: int = 2,
    auxiliary: Iterable[str] = AUXILIARY_DETECTORS,
) -> list[Finding]:
    """Link the parts of each operation into one case, drop cases under
    ``min_score``, and rank (score descending, then id).

    Parameters
    ----------
    findings
        Findings of every detector of one run (the parts).
    merge_overlap
        Jaccard similarity of two parts' member sets at or above which they link
        (with at least ``min_shared`` accounts in common).
    merge_containment
        Share of the smaller part's accounts that lie in the other at or above
        which two parts link (with at least ``min_shared`` accounts in common);
        also the share of an auxiliary part that must lie in a case for it to join.
    min_score
        Cases scoring below this are left out of the queue.
    min_shared
        Least number of shared accounts for any link: one account never links.
    auxiliary
        Names of the detectors whose findings join cases without linking them.

    Examples
    --------
    >>> from ringscope.model import DetectorInfo, Member
    >>> d1, d2 = DetectorInfo("a", "1"), DetectorInfo("b", "1")
    >>> f1 = Finding.build(kind="engagement_farm", score=0.6, explanation="", detector=d1,
    ...                    members=[Member("u1", "engager", 1.0), Member("u2", "engager", 1.0)])
    >>> f2 = Finding.build(kind="identity_cluster", score=0.5, explanation="", detector=d2,
    ...                    members=[Member("u1", "account", 1.0), Member("u2", "account", 1.0)])
    >>> [(f.kind, f.score, len(f.detectors)) for f in build_queue([f1, f2])]
    [('engagement_farm', 0.8, 2)]
    """
    cases = link_cases(
        findings,
        merge_overlap=merge_overlap,
        merge_containment=merge_containment,
        min_shared=min_shared,
        auxiliary=auxiliary,
    )
    aux_names = set(auxiliary)
    owner: dict[str, int] = {}
    for c, parts in enumerate(cases):
        for p in parts:
            if p.detector.name not in aux_names:
                for a in p.member_ids:
                    owner.setdefault(a, c)
    by_id: dict[str, Finding] = {}
    for c, parts in enumerate(cases):
        primary = [p for p in parts if p.detector.name not in aux_names]
        extra = [p for p in parts if p.detector.name in aux_names]
        taken = frozenset(a for p in extra for a in p.member_ids if owner.get(a, c) != c)
        f = make_case(primary, extra, taken)
        if f.score >= min_score and (f.id not in by_id or f.score > by_id[f.id].score):
            by_id[f.id] = f
    return rank(list(by_id.values()))
