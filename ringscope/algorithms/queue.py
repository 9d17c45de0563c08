"""One ranked queue across detectors: overlapping findings merged, then ranked.

Two findings of *different* detectors whose member sets overlap enough (Jaccard
at least ``merge_overlap``, or one containing at least ``merge_containment`` of
the other) describe the same network seen from two sides: they become one
finding that keeps every detector's signals and evidence. Its score is the
noisy-or of the parts, ``1 - prod(1 - s_i)``: independent detectors agreeing
raise confidence.
"""

from __future__ import annotations

from collections.abc import Iterable

from ringscope.model import Finding, Member, Signal, rank


def _overlap(a: frozenset[str], b: frozenset[str]) -> tuple[float, float]:
    inter = len(a & b)
    if not inter:
        return 0.0, 0.0
    return inter / len(a | b), inter / min(len(a), len(b))


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


def build_queue(
    findings: Iterable[Finding],
    *,
    merge_overlap: float = 0.5,
    merge_containment: float = 0.8,
    min_score: float = 0.0,
) -> list[Finding]:
    """Merge overlapping findings of different detectors, drop those under
    ``min_score``, and rank (score descending, then id).

    Parameters
    ----------
    findings
        Findings of every detector of one run.
    merge_overlap
        Jaccard similarity of member sets at or above which two findings merge.
    merge_containment
        Share of the smaller member set found in the larger one at or above
        which two findings merge.
    min_score
        Findings scoring below this after merging are left out of the queue.

    Examples
    --------
    >>> from ringscope.model import DetectorInfo, Member
    >>> d1, d2 = DetectorInfo("a", "1"), DetectorInfo("b", "1")
    >>> f1 = Finding.build(kind="x", score=0.6, explanation="", detector=d1,
    ...                    members=[Member("u1", "buyer", 1.0), Member("u2", "buyer", 1.0)])
    >>> f2 = Finding.build(kind="y", score=0.5, explanation="", detector=d2,
    ...                    members=[Member("u1", "buyer", 1.0), Member("u2", "buyer", 1.0)])
    >>> [(f.kind, f.score, len(f.detectors)) for f in build_queue([f1, f2])]
    [('x', 0.8, 2)]
    """
    pending = rank(list(findings))
    merged: list[Finding] = []
    # member sets and detector names of ``merged``, kept in step with it
    sets: list[frozenset[str]] = []
    names: list[set[str]] = []
    for f in pending:
        fs = frozenset(f.member_ids)
        fnames = {d.name for d in f.detectors}
        for i, g in enumerate(merged):
            if fnames & names[i]:
                continue
            jac, cont = _overlap(fs, sets[i])
            if jac >= merge_overlap or cont >= merge_containment:
                merged[i] = merge_findings(g, f)
                sets[i] = frozenset(merged[i].member_ids)
                names[i] = {d.name for d in merged[i].detectors}
                break
        else:
            merged.append(f)
            sets.append(fs)
            names.append(fnames)
    # merging can change ids; one finding per id
    by_id: dict[str, Finding] = {}
    for f in merged:
        if f.score >= min_score and (f.id not in by_id or f.score > by_id[f.id].score):
            by_id[f.id] = f
    return rank(list(by_id.values()))
