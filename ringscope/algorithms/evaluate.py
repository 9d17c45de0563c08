"""How well findings recover planted rings: ring-level and account-level metrics.

Compares a run's findings (and optionally its account scores) with a ``truth`` table
(``ring_id, kind, account_id, role``), as written by the synthetic marketplace generator.

Rules
-----
- A **ring** is the set of accounts of one ``ring_id`` (every role counts as a member).
- A finding **matches** a ring when it covers at least half of the ring's members and at
  least half of the finding's members are in the ring (the 50/50 rule).
- Truth kinds that start with one of :data:`HARD_NEGATIVE_KINDS` are **hard negatives**:
  legit groups that look suspicious. They are not abuse to find; evaluation reports how
  many of their accounts appear in findings and how many of their groups a finding
  matches. Accounts that are also in an abuse ring do not count as hard negatives.
  Every other kind is abuse.
- Ring-level **recall** per abuse kind: share of its rings matched by some finding (any
  finding kind); ``recall_mapped`` counts only findings whose kind maps to that truth kind
  through :data:`FINDING_KINDS`.
- Ring-level **precision**: share of findings that match some abuse ring of any kind,
  overall and per finding kind (``precision_mapped``: of a mapped truth kind).
- **Account level**: the predicted accounts are the members of all findings; positives are
  the members of abuse rings; every other account is negative. ROC AUC ranks accounts by
  ``scores`` (accounts not scored get 0) over ``all_accounts`` when given, otherwise over
  every account in ``truth`` or ``scores``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ringscope.errors import InputError, Problem
from ringscope.model import Finding

TRUTH_COLUMNS = ("ring_id", "kind", "account_id", "role")
SCORE_COLUMNS = ("account_id", "score")

#: Truth kinds of planted abuse written by the synthetic generator.
ABUSE_KINDS = ("engagement_farm", "commission_ring", "incentive_farm", "money_cycle")
#: Truth kinds starting with one of these are hard negatives (legit look-alikes).
HARD_NEGATIVE_KINDS = ("household", "carrier_ip", "viral_stream", "flash_sale", "fan_club")

#: Which truth kinds each finding kind is meant to find. A finding kind not listed here
#: is taken to look for every abuse kind.
FINDING_KINDS: dict[str, tuple[str, ...]] = {
    "engagement_farm": ("engagement_farm",),
    "dense_block": ("engagement_farm",),
    "commission_ring": ("commission_ring",),
    "dense_orders": ("commission_ring", "incentive_farm", "money_cycle"),
    "identity_cluster": ("incentive_farm", "commission_ring"),
    "money_cycle": ("money_cycle",),
    "label_propagation": ABUSE_KINDS,
}

#: Column names of :meth:`EvaluationReport.to_rows`.
ROW_COLUMNS = ("section", "name", "metric", "value")


def is_hard_negative(kind: str) -> bool:
    """Whether a truth kind is a hard negative (see :data:`HARD_NEGATIVE_KINDS`)."""
    return kind.startswith(HARD_NEGATIVE_KINDS)


def mapped_truth_kinds(finding_kind: str, abuse_kinds: Iterable[str]) -> tuple[str, ...]:
    """The truth kinds a finding kind is meant to find (every abuse kind if unknown)."""
    return FINDING_KINDS.get(finding_kind, tuple(abuse_kinds))


# ---------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class KindMetrics:
    """Ring- and account-level recall of one abuse kind."""

    rings: int
    found: int
    recall: float | None
    found_mapped: int
    recall_mapped: float | None
    accounts: int
    accounts_found: int
    account_recall: float | None


@dataclass(frozen=True, slots=True)
class FindingKindMetrics:
    """Ring-level precision of the findings of one kind."""

    findings: int
    matched: int
    precision: float | None
    matched_mapped: int
    precision_mapped: float | None


@dataclass(frozen=True, slots=True)
class HardNegativeMetrics:
    """False positives on one kind of hard negative."""

    groups: int
    accounts: int
    flagged_accounts: int
    fp_rate: float | None
    flagged_groups: int
    group_flag_rate: float | None


@dataclass(frozen=True, slots=True)
class AccountMetrics:
    """Account-level precision, recall, F1 and ROC AUC."""

    predicted: int
    positives: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    auc: float | None
    scored_universe: int


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Everything :func:`evaluate` measured."""

    findings: int
    rings: int
    rings_found: int
    ring_recall: float | None
    findings_matched: int
    ring_precision: float | None
    accounts: AccountMetrics
    by_kind: dict[str, KindMetrics] = field(default_factory=dict)
    by_finding_kind: dict[str, FindingKindMetrics] = field(default_factory=dict)
    hard_negatives: dict[str, HardNegativeMetrics] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (undefined ratios are ``None``)."""
        return asdict(self)

    def to_rows(self) -> list[tuple[str, str, str, str]]:
        """Rows ``(section, name, metric, value)`` for a table (see :data:`ROW_COLUMNS`)."""
        rows: list[tuple[str, str, str, str]] = []

        def add(section: str, name: str, metrics: dict[str, Any]) -> None:
            for metric, value in metrics.items():
                rows.append((section, name, metric, _fmt(value)))

        add(
            "rings",
            "all",
            {
                "rings": self.rings,
                "found": self.rings_found,
                "recall": self.ring_recall,
                "findings": self.findings,
                "matched": self.findings_matched,
                "precision": self.ring_precision,
            },
        )
        for kind, km in self.by_kind.items():
            add("rings by kind", kind, asdict(km))
        for kind, fm in self.by_finding_kind.items():
            add("findings by kind", kind, asdict(fm))
        add("accounts", "all", asdict(self.accounts))
        for kind, hm in self.hard_negatives.items():
            add("hard negatives", kind, asdict(hm))
        return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# ---------------------------------------------------------------------- inputs


def _check_truth(truth: pd.DataFrame, source: str = "truth") -> pd.DataFrame:
    if not isinstance(truth, pd.DataFrame):
        raise InputError(f"{source}: expected a DataFrame, got {type(truth).__name__}")
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(Problem(source, None, missing[0], f"missing column(s) {missing}"))
    twice = sorted({str(c) for c in truth.columns[truth.columns.duplicated()]})
    if twice:
        raise InputError(Problem(source, None, twice[0], "column named more than once"))
    t = truth[list(TRUTH_COLUMNS)].copy()
    for col in ("ring_id", "kind", "account_id"):
        bad = t[col].isna() | (t[col].astype(str).str.strip() == "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise InputError(Problem(source, row, col, "empty value"))
    t["role"] = t["role"].fillna("member")
    t = t.astype({c: str for c in TRUTH_COLUMNS})
    return t.drop_duplicates(ignore_index=True)


def _check_scores(scores: pd.DataFrame) -> pd.Series:
    if not isinstance(scores, pd.DataFrame):
        raise InputError(f"scores: expected a DataFrame, got {type(scores).__name__}")
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise InputError(Problem("scores", None, missing[0], f"missing column(s) {missing}"))
    values = pd.to_numeric(scores["score"], errors="coerce")
    bad = values.isna() & scores["score"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise InputError(Problem("scores", row, "score", "not a number"))
    s = pd.Series(values.fillna(0.0).to_numpy(), index=scores["account_id"].astype(str))
    return s.groupby(level=0).max()


def read_truth(path: str | Path) -> pd.DataFrame:
    """Read ``truth.csv`` (``ring_id, kind, account_id, role``) as strings.

    Raises
    ------
    InputError
        When the file is missing or unreadable, lacks a column or has an empty id.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "truth.csv")
    ...     _ = open(p, "w").write("ring_id,kind,account_id,role\\nr1,money_cycle,a1,member\\n")
    ...     read_truth(p).to_dict("records")
    [{'ring_id': 'r1', 'kind': 'money_cycle', 'account_id': 'a1', 'role': 'member'}]
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(Problem(str(p), None, None, "no such file"))
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        df = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(Problem(str(p), None, None, f"cannot read as CSV: {e}")) from e
    # pandas renames a repeated header ("kind", "kind.1"): the file's own header decides
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise InputError(Problem(str(p), 1, twice[0], "column named more than once"))
    return _check_truth(df, str(p))


# ---------------------------------------------------------------------- matching


def _memberships(findings: list[Finding]) -> pd.DataFrame:
    rows = [(i, a) for i, f in enumerate(findings) for a in set(f.member_ids)]
    return pd.DataFrame(rows, columns=["finding", "account_id"]).astype(
        {"finding": np.int64, "account_id": str}
    )


def _matches(
    members: pd.DataFrame, finding_sizes: np.ndarray, rings: pd.DataFrame, ring_sizes: pd.Series
) -> pd.DataFrame:
    """Pairs (finding, ring_id) that satisfy the 50/50 rule."""
    pairs = members.merge(rings[["ring_id", "account_id"]], on="account_id")
    if pairs.empty:
        return pd.DataFrame({"finding": [], "ring_id": []})
    overlap = pairs.groupby(["finding", "ring_id"]).size().rename("n").reset_index()
    f_size = finding_sizes[overlap["finding"].to_numpy()]
    r_size = ring_sizes.reindex(overlap["ring_id"]).to_numpy()
    ok = (2 * overlap["n"].to_numpy() >= r_size) & (2 * overlap["n"].to_numpy() >= f_size)
    return overlap.loc[ok, ["finding", "ring_id"]].reset_index(drop=True)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC by the rank formula (ties get average ranks); ``None`` without both classes.

    Examples
    --------
    >>> roc_auc(np.array([0.9, 0.8, 0.1, 0.3]), np.array([True, False, False, True]))
    0.75
    """
    pos = int(labels.sum())
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


# ---------------------------------------------------------------------- evaluate


def evaluate(
    findings: list[Finding],
    truth: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    *,
    all_accounts: Iterable[str] | None = None,
) -> EvaluationReport:
    """Compare findings (and account scores) with planted truth.

    Parameters
    ----------
    findings : list of Finding
        The findings of one run.
    truth : DataFrame
        Columns ``ring_id, kind, account_id, role`` (see :func:`read_truth`).
    scores : DataFrame, optional
        Columns ``account_id, score``; gives ROC AUC. Accounts not scored get 0.
    all_accounts : iterable of str, optional
        The accounts the AUC is measured over (e.g. every account of the export).

    Returns
    -------
    EvaluationReport

    Raises
    ------
    InputError
        When ``truth`` or ``scores`` lacks a column or has an empty id or a bad score.

    Examples
    --------
    >>> from ringscope.model import DetectorInfo, Member
    >>> truth = pd.DataFrame({"ring_id": ["r1"] * 4 + ["hn-household-1"] * 2,
    ...     "kind": ["money_cycle"] * 4 + ["household"] * 2,
    ...     "account_id": ["a", "b", "c", "d", "x", "y"], "role": "member"})
    >>> f = Finding.build(kind="money_cycle", score=0.9, explanation="",
    ...     members=[Member(a, "member", 0.9) for a in "abcx"],
    ...     detector=DetectorInfo("cycles", "1"))
    >>> r = evaluate([f], truth)
    >>> r.ring_recall, r.ring_precision, r.accounts.precision
    (1.0, 1.0, 0.75)
    >>> r.hard_negatives["household"].fp_rate
    0.5
    """
    t = _check_truth(truth)
    hard = t["kind"].map(is_hard_negative).astype(bool)
    abuse_t = t[~hard]
    hn_t = t[hard]
    positives = set(abuse_t["account_id"])
    abuse_kinds = sorted(abuse_t["kind"].unique())

    members = _memberships(findings)
    finding_sizes = np.array([len(set(f.member_ids)) for f in findings], dtype=np.int64)
    predicted = set(members["account_id"])

    # ring level
    ring_kind = abuse_t.groupby("ring_id")["kind"].first()
    ring_sizes = abuse_t.groupby("ring_id")["account_id"].nunique()
    m = _matches(members, finding_sizes, abuse_t, ring_sizes)
    f_kinds = np.array([f.kind for f in findings], dtype=object)
    m = m.assign(
        ring_kind=ring_kind.reindex(m["ring_id"]).to_numpy(),
        finding_kind=f_kinds[m["finding"].to_numpy(dtype=np.int64)] if len(m) else [],
    )
    m["mapped"] = [
        rk in mapped_truth_kinds(fk, abuse_kinds)
        for fk, rk in zip(m["finding_kind"], m["ring_kind"], strict=True)
    ]
    found_rings = set(m["ring_id"])
    found_mapped = set(m.loc[m["mapped"], "ring_id"])
    matched_findings = set(m["finding"].astype(int))
    matched_mapped = set(m.loc[m["mapped"], "finding"].astype(int))

    by_kind: dict[str, KindMetrics] = {}
    for kind in abuse_kinds:
        rids = set(ring_kind.index[ring_kind == kind])
        accs = set(abuse_t.loc[abuse_t["kind"] == kind, "account_id"])
        n_found = len(rids & found_rings)
        n_mapped = len(rids & found_mapped)
        n_acc = len(accs & predicted)
        by_kind[kind] = KindMetrics(
            rings=len(rids),
            found=n_found,
            recall=_ratio(n_found, len(rids)),
            found_mapped=n_mapped,
            recall_mapped=_ratio(n_mapped, len(rids)),
            accounts=len(accs),
            accounts_found=n_acc,
            account_recall=_ratio(n_acc, len(accs)),
        )

    by_finding_kind: dict[str, FindingKindMetrics] = {}
    for fk in sorted(set(f_kinds.tolist())):
        idx = set(np.flatnonzero(f_kinds == fk).tolist())
        n_m = len(idx & matched_findings)
        n_mm = len(idx & matched_mapped)
        by_finding_kind[fk] = FindingKindMetrics(
            findings=len(idx),
            matched=n_m,
            precision=_ratio(n_m, len(idx)),
            matched_mapped=n_mm,
            precision_mapped=_ratio(n_mm, len(idx)),
        )

    # account level
    tp = len(predicted & positives)
    fp = len(predicted - positives)
    fn = len(positives - predicted)
    auc: float | None = None
    universe_size = 0
    if scores is not None:
        s = _check_scores(scores)
        if all_accounts is not None:
            universe = pd.Index(sorted(set(map(str, all_accounts))))
        else:
            universe = pd.Index(sorted(set(t["account_id"]) | set(s.index)))
        universe_size = len(universe)
        values = s.reindex(universe).fillna(0.0).to_numpy(dtype=np.float64)
        labels = universe.isin(list(positives))
        auc = roc_auc(values, labels)
    accounts = AccountMetrics(
        predicted=len(predicted),
        positives=len(positives),
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        auc=auc,
        scored_universe=universe_size,
    )

    # hard negatives
    hn_t = hn_t[~hn_t["account_id"].isin(positives)]
    hn: dict[str, HardNegativeMetrics] = {}
    if len(hn_t):
        hn_sizes = hn_t.groupby("ring_id")["account_id"].nunique()
        hm = _matches(members, finding_sizes, hn_t, hn_sizes)
        flagged_groups = set(hm["ring_id"])
        for kind in sorted(hn_t["kind"].unique()):
            part = hn_t[hn_t["kind"] == kind]
            accs = set(part["account_id"])
            groups = set(part["ring_id"])
            n_acc = len(accs & predicted)
            n_grp = len(groups & flagged_groups)
            hn[kind] = HardNegativeMetrics(
                groups=len(groups),
                accounts=len(accs),
                flagged_accounts=n_acc,
                fp_rate=_ratio(n_acc, len(accs)),
                flagged_groups=n_grp,
                group_flag_rate=_ratio(n_grp, len(groups)),
            )

    n_rings = len(ring_kind)
    return EvaluationReport(
        findings=len(findings),
        rings=n_rings,
        rings_found=len(found_rings),
        ring_recall=_ratio(len(found_rings), n_rings),
        findings_matched=len(matched_findings),
        ring_precision=_ratio(len(matched_findings), len(findings)),
        accounts=accounts,
        by_kind=by_kind,
        by_finding_kind=by_finding_kind,
        hard_negatives=hn,
    )
