"""How well findings recover planted rings: strict ring-level and account-level metrics.

Compares a run's findings (and optionally its account scores) with a ``truth`` table
(``ring_id, kind, account_id, role``), as written by the synthetic marketplace generator.

Rules
-----
- A **ring** is the set of accounts of one ``ring_id`` (every role counts as a member:
  an engagement farm's target creators, a commission ring's creator and seller). Its
  size is its number of distinct accounts; its **size band** is one of
  :data:`SIZE_BANDS` (``3-10``, ``11-50``, ``51-200``, ``201+``; smaller groups fall in
  ``1-2``). A finding's size band is that of its number of distinct members.
- A finding and a ring are a **candidate pair** when *more than* half of the ring's
  members are members of the finding *and* more than half of the finding's members are
  in the ring (exactly half is not enough on either side). A finding's beneficiaries
  are not members and do not count.
- A candidate pair **matches by kind** when the finding's ``kind`` maps to the ring's
  truth kind through :data:`FINDING_KINDS`. A merged finding made of several detectors'
  parts (the queue's merge, or a case) is judged by its own ``kind`` (the kind it
  carries, i.e. its main part's), never by the kinds of the parts listed in its
  ``detectors`` or signals. A finding kind not in :data:`FINDING_KINDS` maps to no truth
  kind (listed in :attr:`EvaluationReport.unmapped_finding_kinds`).
- **One to one.** Each ring is matched by at most one finding and each finding matches at
  most one ring. Candidate pairs are taken greedily, best first: higher Jaccard of the
  two member sets, then more shared accounts, then the higher finding score, then the
  smaller finding id, then the smaller ring id (deterministic). A finding whose every
  candidate ring is already taken is a **duplicate** and counts as wrong, as does a
  **fragment** (mostly ring members, but not more than half of the ring).
- **Recall** of a kind (or size band): matched rings over rings. **Precision** of a
  finding kind (or of a finding size band): matched findings over findings. Findings
  that name only ordinary accounts or hard negatives are wrong.
- **Kind-blind** figures (fields ending in ``_any_kind``) apply the same overlap and one
  to one rules with every finding kind allowed for every ring, so that a ring missed
  for the wrong kind (``reason == "wrong kind"``) can be told from one that no finding
  covers.
- Truth kinds that start with one of :data:`HARD_NEGATIVE_KINDS` are **hard negatives**:
  legit groups that look suspicious (ring ids ``hn-<kind>-...``). They are not abuse to
  find. For each such kind: the share of its accounts that are members of any finding
  (``fp_rate``), and the share of its groups of which one finding holds more than half
  of the accounts (``group_flag_rate``). Accounts that are also in an abuse ring do not
  count as hard negatives. Every other kind is abuse.
- **Account level**: the predicted accounts are the members of all findings; positives are
  the members of abuse rings; every other account is negative. ROC AUC ranks accounts by
  ``scores`` (accounts not scored get 0) over ``all_accounts`` when given, otherwise over
  every account in ``truth`` or ``scores``.

Before the strict rules, a pair matched with *at least* half on both sides, recall
accepted a finding of any kind and every duplicate of a right finding counted as right;
the fields ``recall``, ``found``, ``precision`` and ``matched`` now follow the rules
above (``recall_mapped``/``precision_mapped`` equal them; the former lenient, any-kind
reading is closest to the ``*_any_kind`` fields, which are still one to one).
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

#: Truth kinds of planted abuse written by the synthetic generator (``money_flow``:
#: layered transfers, fan-out and fan-in; ``money_cycle``: money that comes back round).
ABUSE_KINDS = ("engagement_farm", "commission_ring", "incentive_farm", "money_cycle", "money_flow")
#: Truth kinds starting with one of these are hard negatives (legit look-alikes).
HARD_NEGATIVE_KINDS = ("household", "carrier_ip", "viral_stream", "flash_sale", "fan_club")
#: In :data:`FINDING_KINDS`: every abuse kind of the truth.
EVERY_ABUSE_KIND = "*"

#: Which truth kinds each finding kind can find, and why:
#:
#: - ``engagement_farm`` (lockstep timing) and ``dense_block`` (accounts x creators,
#:   FRAUDAR) see engagement only: engagement farms.
#: - ``commission_ring``: the commission detector's buyer groups, with their creator and
#:   seller: commission rings.
#: - ``dense_orders`` (buyers x sellers, FRAUDAR) sees orders only: every order-made
#:   abuse, i.e. commission rings' sock-puppet buyers ordering from their seller, incentive
#:   farms' first orders at a few promoted sellers, and money cycles and flows, whose
#:   members pay each other through orders.
#: - ``identity_cluster`` (shared devices, cards, IPs, addresses): incentive farms, and
#:   commission rings, whose buyers share cards and devices (the buyers are most of such
#:   a ring).
#: - ``money_cycle`` and ``money_flow``: money moved between accounts, whether it comes
#:   back round (a cycle) or is layered onwards (a flow); each detector can find both.
#: - ``label_propagation`` (guilt by association from investigators' labels) says who is
#:   close to known abusers, not how they abuse: every abuse kind.
#:
#: A finding kind not listed here finds no truth kind (only the kind-blind figures count
#: it); add a new detector's kind here.
FINDING_KINDS: dict[str, tuple[str, ...]] = {
    "engagement_farm": ("engagement_farm",),
    "dense_block": ("engagement_farm",),
    "commission_ring": ("commission_ring",),
    "dense_orders": ("commission_ring", "incentive_farm", "money_cycle", "money_flow"),
    "identity_cluster": ("incentive_farm", "commission_ring"),
    "money_cycle": ("money_cycle", "money_flow"),
    "money_flow": ("money_flow", "money_cycle"),
    "label_propagation": (EVERY_ABUSE_KIND,),
}

#: Size bands of rings and findings (number of distinct accounts), smallest first.
SIZE_BANDS = ("1-2", "3-10", "11-50", "51-200", "201+")
_BAND_LOWS = (1, 3, 11, 51, 201)

#: Why a ring was not matched (``RingOutcome.reason``), besides ``found``.
RING_REASONS = ("wrong kind", "taken", "too broad", "fragment", "scattered", "no finding")
#: Why a finding is wrong (``FindingOutcome.reason``), besides ``right``.
FINDING_REASONS = (
    "duplicate",
    "wrong kind",
    "fragment",
    "too broad",
    "hard negative",
    "mixed",
    "no ring",
)

#: Column names of :meth:`EvaluationReport.to_rows`.
ROW_COLUMNS = ("section", "name", "metric", "value")


def is_hard_negative(kind: str) -> bool:
    """Whether a truth kind is a hard negative (see :data:`HARD_NEGATIVE_KINDS`)."""
    return kind.startswith(HARD_NEGATIVE_KINDS)


def mapped_truth_kinds(finding_kind: str, abuse_kinds: Iterable[str]) -> tuple[str, ...]:
    """The truth kinds a finding kind can find (see :data:`FINDING_KINDS`).

    ``abuse_kinds`` are the truth's abuse kinds, what :data:`EVERY_ABUSE_KIND` stands for.
    A finding kind not in :data:`FINDING_KINDS` finds none.

    Examples
    --------
    >>> mapped_truth_kinds("dense_block", ABUSE_KINDS)
    ('engagement_farm',)
    >>> mapped_truth_kinds("label_propagation", ["money_cycle", "incentive_farm"])
    ('money_cycle', 'incentive_farm')
    >>> mapped_truth_kinds("something_new", ABUSE_KINDS)
    ()
    """
    kinds = FINDING_KINDS.get(finding_kind, ())
    if EVERY_ABUSE_KIND in kinds:
        return tuple(abuse_kinds)
    return kinds


def size_band(size: int) -> str:
    """The size band (:data:`SIZE_BANDS`) of a ring or finding of ``size`` accounts.

    Examples
    --------
    >>> [size_band(n) for n in (2, 3, 10, 11, 50, 51, 200, 201, 5000)]
    ['1-2', '3-10', '3-10', '11-50', '11-50', '51-200', '51-200', '201+', '201+']
    """
    i = int(np.searchsorted(_BAND_LOWS, size, side="right")) - 1
    return SIZE_BANDS[max(i, 0)]


# ---------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class KindMetrics:
    """Ring- and account-level recall of one abuse kind.

    ``found``/``recall``: rings matched by a finding of a kind that finds this kind (the
    strict rule); ``found_mapped``/``recall_mapped`` are the same numbers, kept for
    readers of older reports; ``found_any_kind``/``recall_any_kind``: kind-blind.
    """

    rings: int
    found: int
    recall: float | None
    found_mapped: int
    recall_mapped: float | None
    accounts: int
    accounts_found: int
    account_recall: float | None
    found_any_kind: int = 0
    recall_any_kind: float | None = None


@dataclass(frozen=True, slots=True)
class FindingKindMetrics:
    """Ring-level precision of the findings of one kind (or one size band).

    ``matched``/``precision``: findings matched one to one to a ring of a kind they find;
    ``matched_mapped``/``precision_mapped`` are the same numbers, kept for readers of
    older reports; ``matched_any_kind``/``precision_any_kind``: kind-blind.
    """

    findings: int
    matched: int
    precision: float | None
    matched_mapped: int
    precision_mapped: float | None
    matched_any_kind: int = 0
    precision_any_kind: float | None = None


@dataclass(frozen=True, slots=True)
class BandMetrics:
    """Ring recall of the rings of one size band (of one kind, or of all)."""

    rings: int
    found: int
    recall: float | None
    found_any_kind: int
    recall_any_kind: float | None


@dataclass(frozen=True, slots=True)
class HardNegativeMetrics:
    """False positives on one kind of hard negative.

    ``flagged_groups``: groups of which one finding holds more than half of the accounts
    (before, a group counted only when it also made up half of that finding).
    """

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
class RingOutcome:
    """What became of one planted ring.

    ``finding``: the finding matched to it by the strict rule ("" if none);
    ``finding_any_kind``: the one matched kind-blind. ``reason`` is ``found`` or one of
    :data:`RING_REASONS`: ``wrong kind`` (a finding of a kind that does not find it holds
    it), ``taken`` (its candidate finding was matched to another ring), ``too broad`` (a
    finding holds more than half of it, but is mostly other accounts), ``fragment`` (a
    finding mostly of its members holds no more than half of it), ``scattered`` (findings
    touch it, neither way by majority), ``no finding`` (no finding names a member).
    ``closest``/``shared``: the finding sharing the most accounts with it, and how many.
    """

    ring_id: str
    kind: str
    size: int
    band: str
    finding: str
    finding_any_kind: str
    reason: str
    closest: str
    shared: int
    detail: str


@dataclass(frozen=True, slots=True)
class FindingOutcome:
    """Whether one finding is right, and if not, why.

    ``ring``: the ring matched to it by the strict rule ("" if none); ``ring_any_kind``:
    the one matched kind-blind. ``reason`` is ``right`` or one of
    :data:`FINDING_REASONS`: ``duplicate`` (its ring is matched by a better finding),
    ``wrong kind`` (it matches a ring of a kind it does not find), ``fragment`` (mostly
    one ring's members, but no more than half of that ring), ``too broad`` (holds more
    than half of a ring, but is mostly other accounts), ``hard negative`` (more than half
    of its members are in legit look-alike groups), ``mixed`` (touches rings, neither way
    by majority), ``no ring`` (names no ring member).
    """

    finding_id: str
    kind: str
    size: int
    band: str
    ring: str
    ring_any_kind: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Everything :func:`evaluate` measured.

    ``rings_found``/``ring_recall`` and ``findings_matched``/``ring_precision`` follow the
    strict rule (kind and one to one, see the module); the ``*_any_kind`` fields are
    kind-blind. ``by_band``: ring recall per ring size band; ``by_kind_band``: per abuse
    kind, then band; ``by_finding_band``: precision per finding size band;
    ``by_finding_kind_band``: per finding kind, then band. ``ring_outcomes`` and
    ``finding_outcomes`` say, per ring and finding, what was matched and why not.
    """

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
    rings_found_any_kind: int = 0
    ring_recall_any_kind: float | None = None
    findings_matched_any_kind: int = 0
    ring_precision_any_kind: float | None = None
    by_band: dict[str, BandMetrics] = field(default_factory=dict)
    by_kind_band: dict[str, dict[str, BandMetrics]] = field(default_factory=dict)
    by_finding_band: dict[str, FindingKindMetrics] = field(default_factory=dict)
    by_finding_kind_band: dict[str, dict[str, FindingKindMetrics]] = field(default_factory=dict)
    unmapped_finding_kinds: tuple[str, ...] = ()
    ring_outcomes: tuple[RingOutcome, ...] = ()
    finding_outcomes: tuple[FindingOutcome, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (undefined ratios are ``None``, sequences are lists)."""
        return asdict(self, dict_factory=_plain_dict)

    def missed_rings(self) -> list[RingOutcome]:
        """The rings not matched by the strict rule, in ring id order."""
        return [r for r in self.ring_outcomes if r.reason != "found"]

    def wrong_findings(self) -> list[FindingOutcome]:
        """The findings not matched by the strict rule."""
        return [f for f in self.finding_outcomes if f.reason != "right"]

    def to_rows(self) -> list[tuple[str, str, str, str]]:
        """Rows ``(section, name, metric, value)`` for a table (see :data:`ROW_COLUMNS`).

        Per-ring and per-finding outcomes are left out (see :meth:`to_dict`)."""
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
                "found_any_kind": self.rings_found_any_kind,
                "recall_any_kind": self.ring_recall_any_kind,
                "findings": self.findings,
                "matched": self.findings_matched,
                "precision": self.ring_precision,
                "matched_any_kind": self.findings_matched_any_kind,
                "precision_any_kind": self.ring_precision_any_kind,
            },
        )
        for kind, km in self.by_kind.items():
            add("rings by kind", kind, asdict(km))
        for b, bm in self.by_band.items():
            add("rings by size", b, asdict(bm))
        for kind, bands in self.by_kind_band.items():
            for b, bm in bands.items():
                add("rings by kind and size", f"{kind} {b}", asdict(bm))
        for kind, fm in self.by_finding_kind.items():
            add("findings by kind", kind, asdict(fm))
        for b, fm in self.by_finding_band.items():
            add("findings by size", b, asdict(fm))
        for kind, fbands in self.by_finding_kind_band.items():
            for b, fm in fbands.items():
                add("findings by kind and size", f"{kind} {b}", asdict(fm))
        add("accounts", "all", asdict(self.accounts))
        for kind, hm in self.hard_negatives.items():
            add("hard negatives", kind, asdict(hm))
        return rows


def _plain_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """``asdict``'s dict factory: tuples as lists, as JSON gives them back."""
    return {k: _plain(v) for k, v in items}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


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


def _overlaps(members: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Accounts shared (``n``) by every (finding, ring_id) pair that shares any."""
    pairs = members.merge(groups[["ring_id", "account_id"]], on="account_id")
    if pairs.empty:
        return pd.DataFrame(
            {
                "finding": pd.Series([], dtype=np.int64),
                "ring_id": pd.Series([], dtype=str),
                "n": pd.Series([], dtype=np.int64),
            }
        )
    return pairs.groupby(["finding", "ring_id"]).size().rename("n").reset_index()


@dataclass(frozen=True, slots=True)
class _Pair:
    """One (finding, ring) overlap with what ranks and classifies it."""

    finding: int
    ring: str
    n: int
    fsize: int
    rsize: int
    kind_ok: bool

    @property
    def candidate(self) -> bool:
        return 2 * self.n > self.rsize and 2 * self.n > self.fsize

    @property
    def jaccard(self) -> float:
        return self.n / (self.rsize + self.fsize - self.n)


def _tie_break(p: _Pair, findings: list[Finding]) -> tuple[float, str, int, str]:
    """After the overlap: the higher finding score, the smaller finding id, ring id."""
    f = findings[p.finding]
    return (-f.score, f.id, p.finding, p.ring)


def _assign(pairs: list[_Pair], findings: list[Finding]) -> dict[int, _Pair]:
    """One-to-one matching, greedy, best pair first (see the module's rules)."""
    by_finding: dict[int, _Pair] = {}
    taken: set[str] = set()
    for p in sorted(pairs, key=lambda p: (-p.jaccard, -p.n, *_tie_break(p, findings))):
        if p.finding in by_finding or p.ring in taken:
            continue
        by_finding[p.finding] = p
        taken.add(p.ring)
    return by_finding


def _closest(pairs: list[_Pair], findings: list[Finding]) -> _Pair:
    """The pair sharing the most accounts (then the best Jaccard, the tie-break)."""
    return min(pairs, key=lambda p: (-p.n, -p.jaccard, *_tie_break(p, findings)))


def _ring_outcome(
    ring: str,
    kind: str,
    size: int,
    pairs: list[_Pair],
    strict: dict[str, _Pair],
    blind: dict[str, _Pair],
    findings: list[Finding],
) -> RingOutcome:
    """Why ``ring`` was or was not matched (see :class:`RingOutcome`)."""

    def desc(p: _Pair) -> str:
        f = findings[p.finding]
        return f"{f.id} ({f.kind}, {p.fsize} members)"

    matched, matched_blind = strict.get(ring), blind.get(ring)
    closest = _closest(pairs, findings) if pairs else None
    cands = [p for p in pairs if p.candidate]
    reason, detail = "no finding", "no finding names any of its members"
    if matched is not None:
        reason = "found"
        detail = f"matched by {desc(matched)}: {matched.n} of its {size} members"
    elif any(p.kind_ok for p in cands):
        p = _closest([p for p in cands if p.kind_ok], findings)
        reason = "taken"
        detail = f"{desc(p)} holds {p.n} of its {size} members but is matched to another ring"
    elif cands:
        p = matched_blind or _closest(cands, findings)
        reason = "wrong kind"
        detail = (
            f"{desc(p)} holds {p.n} of its {size} members, but "
            f"{findings[p.finding].kind} findings do not find {kind}"
        )
    elif closest is not None:
        p = closest
        share = f"{desc(p)} holds {p.n} of its {size} members and {p.n} of its own {p.fsize}"
        if 2 * p.n > size:
            reason, detail = "too broad", f"{share}: mostly other accounts"
        elif 2 * p.n > p.fsize:
            reason, detail = "fragment", f"{share}: no more than half of the ring"
        else:
            reason, detail = "scattered", f"at most {share}"
    return RingOutcome(
        ring_id=ring,
        kind=kind,
        size=size,
        band=size_band(size),
        finding=findings[matched.finding].id if matched else "",
        finding_any_kind=findings[matched_blind.finding].id if matched_blind else "",
        reason=reason,
        closest=findings[closest.finding].id if closest else "",
        shared=closest.n if closest else 0,
        detail=detail,
    )


def _finding_outcome(
    i: int,
    findings: list[Finding],
    size: int,
    pairs: list[_Pair],
    strict: dict[int, _Pair],
    blind: dict[int, _Pair],
    ring_kind: dict[str, str],
    matched_by: dict[str, int],
    hard_members: dict[str, int],
) -> FindingOutcome:
    """Whether finding ``i`` is right, and if not why (see :class:`FindingOutcome`)."""
    f = findings[i]

    def desc(p: _Pair) -> str:
        return f"{p.ring} ({ring_kind[p.ring]}, {p.rsize} members)"

    matched, matched_blind = strict.get(i), blind.get(i)
    cands = [p for p in pairs if p.candidate]
    if matched is not None:
        reason = "right"
        detail = f"matches {desc(matched)}: {matched.n} of its {size} members are in it"
    elif any(p.kind_ok for p in cands):
        p = _closest([p for p in cands if p.kind_ok], findings)
        other = findings[matched_by[p.ring]].id
        reason = "duplicate"
        detail = f"{desc(p)}, which {p.n} of its {size} members are in, is matched by {other}"
    elif cands:
        p = matched_blind or _closest(cands, findings)
        reason = "wrong kind"
        detail = f"matches {desc(p)}, but {f.kind} findings do not find {ring_kind[p.ring]}"
    else:
        best = _closest(pairs, findings) if pairs else None
        n_hard = sum(hard_members.values())
        if best is not None and 2 * best.n > size:
            reason = "fragment"
            detail = f"{best.n} of its {size} members are in {desc(best)}: not more than half"
        elif best is not None and 2 * best.n > best.rsize:
            reason = "too broad"
            detail = f"holds {best.n} of {desc(best)}, but {size - best.n} other accounts"
        elif 2 * n_hard > size:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(hard_members.items()))
            reason = "hard negative"
            detail = f"{n_hard} of its {size} members are in legit look-alike groups ({kinds})"
        elif best is not None:
            reason = "mixed"
            detail = f"at most {best.n} of its {size} members in one ring, {desc(best)}"
        else:
            reason, detail = "no ring", f"none of its {size} members is in a planted ring"
    return FindingOutcome(
        finding_id=f.id,
        kind=f.kind,
        size=size,
        band=size_band(size),
        ring=matched.ring if matched else "",
        ring_any_kind=matched_blind.ring if matched_blind else "",
        reason=reason,
        detail=detail,
    )


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
    """Compare findings (and account scores) with planted truth, by the strict rules.

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
    >>> def f(kind, accounts):
    ...     return Finding.build(kind=kind, score=0.9, explanation="",
    ...         members=[Member(a, "member", 0.9) for a in accounts],
    ...         detector=DetectorInfo("test", "1"))
    >>> truth = pd.DataFrame({"ring_id": ["r1"] * 4 + ["hn-household-1"] * 2,
    ...     "kind": ["money_cycle"] * 4 + ["household"] * 2,
    ...     "account_id": ["a", "b", "c", "d", "x", "y"], "role": "member"})
    >>> r = evaluate([f("money_cycle", "abcx")], truth)
    >>> r.ring_recall, r.ring_precision, r.accounts.precision
    (1.0, 1.0, 0.75)
    >>> r.hard_negatives["household"].fp_rate
    0.5

    Exactly half of the ring is not enough:

    >>> evaluate([f("money_cycle", "ab")], truth).ring_recall
    0.0

    A finding of a kind that does not find the ring's kind matches only kind-blind:

    >>> r = evaluate([f("engagement_farm", "abc")], truth)
    >>> r.ring_recall, r.ring_recall_any_kind, r.ring_outcomes[0].reason
    (0.0, 1.0, 'wrong kind')

    Two findings of one ring: the better one is right, the other a duplicate:

    >>> r = evaluate([f("money_cycle", "abcd"), f("money_cycle", "abc")], truth)
    >>> r.ring_precision, sorted(o.reason for o in r.finding_outcomes)
    (0.5, ['duplicate', 'right'])
    """
    t = _check_truth(truth)
    hard = t["kind"].map(is_hard_negative).astype(bool)
    abuse_t = t[~hard].drop_duplicates(["ring_id", "account_id"])
    hn_t = t[hard]
    positives = set(abuse_t["account_id"])
    abuse_kinds = sorted(abuse_t["kind"].unique())

    members = _memberships(findings)
    finding_sizes = np.array([len(set(f.member_ids)) for f in findings], dtype=np.int64)
    predicted = set(members["account_id"])

    # ring level: overlaps, candidates, one-to-one assignment with and without kinds
    ring_kind: dict[str, str] = {
        str(r): str(k) for r, k in abuse_t.groupby("ring_id")["kind"].first().items()
    }
    ring_size: dict[str, int] = {
        str(r): int(n) for r, n in abuse_t.groupby("ring_id")["account_id"].nunique().items()
    }
    finds = {fk: set(mapped_truth_kinds(fk, abuse_kinds)) for fk in {f.kind for f in findings}}
    ov = _overlaps(members, abuse_t)
    pairs = [
        _Pair(
            finding=int(i),
            ring=str(r),
            n=int(n),
            fsize=int(finding_sizes[int(i)]),
            rsize=int(ring_size[r]),
            kind_ok=ring_kind[r] in finds[findings[int(i)].kind],
        )
        for i, r, n in zip(ov["finding"], ov["ring_id"], ov["n"], strict=True)
    ]
    cands = [p for p in pairs if p.candidate]
    strict = _assign([p for p in cands if p.kind_ok], findings)
    blind = _assign(cands, findings)
    strict_ring = {p.ring: p for p in strict.values()}
    blind_ring = {p.ring: p for p in blind.values()}

    pairs_of_ring: dict[str, list[_Pair]] = {}
    pairs_of_finding: dict[int, list[_Pair]] = {}
    for p in pairs:
        pairs_of_ring.setdefault(p.ring, []).append(p)
        pairs_of_finding.setdefault(p.finding, []).append(p)

    # hard negatives: accounts also in abuse rings do not count
    hn_t = hn_t[~hn_t["account_id"].isin(positives)].drop_duplicates(["ring_id", "account_id"])
    hn_kind_of_account = hn_t.drop_duplicates("account_id").set_index("account_id")["kind"]
    hard_members: dict[int, dict[str, int]] = {}
    if len(hn_t) and len(members):
        hm = members.merge(
            hn_kind_of_account.rename("kind"), left_on="account_id", right_index=True
        )
        counts = hm.groupby(["finding", "kind"]).size()
        for (i, kind), n in zip(counts.index.tolist(), counts.tolist(), strict=True):
            hard_members.setdefault(int(i), {})[str(kind)] = int(n)

    ring_outcomes = tuple(
        _ring_outcome(
            r,
            ring_kind[r],
            int(ring_size[r]),
            pairs_of_ring.get(r, []),
            strict_ring,
            blind_ring,
            findings,
        )
        for r in sorted(ring_kind)
    )
    matched_by = {p.ring: p.finding for p in strict.values()}
    finding_outcomes = tuple(
        _finding_outcome(
            i,
            findings,
            int(finding_sizes[i]),
            pairs_of_finding.get(i, []),
            strict,
            blind,
            ring_kind,
            matched_by,
            hard_members.get(i, {}),
        )
        for i in range(len(findings))
    )

    # recall per kind and size band
    by_kind: dict[str, KindMetrics] = {}
    for kind in abuse_kinds:
        rids = [r for r in ring_kind if ring_kind[r] == kind]
        n_found = sum(r in strict_ring for r in rids)
        n_blind = sum(r in blind_ring for r in rids)
        accs = set(abuse_t.loc[abuse_t["kind"] == kind, "account_id"])
        n_acc = len(accs & predicted)
        by_kind[kind] = KindMetrics(
            rings=len(rids),
            found=n_found,
            recall=_ratio(n_found, len(rids)),
            found_mapped=n_found,
            recall_mapped=_ratio(n_found, len(rids)),
            accounts=len(accs),
            accounts_found=n_acc,
            account_recall=_ratio(n_acc, len(accs)),
            found_any_kind=n_blind,
            recall_any_kind=_ratio(n_blind, len(rids)),
        )
    by_band = _ring_bands(ring_outcomes)
    by_kind_band = {
        kind: _ring_bands([o for o in ring_outcomes if o.kind == kind]) for kind in abuse_kinds
    }

    # precision per finding kind and size band
    f_kinds = sorted({f.kind for f in findings})
    by_finding_kind = {
        fk: _finding_metrics([o for o in finding_outcomes if o.kind == fk]) for fk in f_kinds
    }
    by_finding_band = _finding_bands(finding_outcomes)
    by_finding_kind_band = {
        fk: _finding_bands([o for o in finding_outcomes if o.kind == fk]) for fk in f_kinds
    }

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

    # hard negatives: accounts named, groups held by majority
    hn: dict[str, HardNegativeMetrics] = {}
    if len(hn_t):
        hn_sizes = hn_t.groupby("ring_id")["account_id"].nunique()
        hov = _overlaps(members, hn_t)
        held = 2 * hov["n"].to_numpy() > hn_sizes.reindex(hov["ring_id"]).to_numpy()
        flagged_groups = set(hov.loc[held, "ring_id"])
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
        rings_found=len(strict_ring),
        ring_recall=_ratio(len(strict_ring), n_rings),
        findings_matched=len(strict),
        ring_precision=_ratio(len(strict), len(findings)),
        accounts=accounts,
        by_kind=by_kind,
        by_finding_kind=by_finding_kind,
        hard_negatives=hn,
        rings_found_any_kind=len(blind_ring),
        ring_recall_any_kind=_ratio(len(blind_ring), n_rings),
        findings_matched_any_kind=len(blind),
        ring_precision_any_kind=_ratio(len(blind), len(findings)),
        by_band=by_band,
        by_kind_band=by_kind_band,
        by_finding_band=by_finding_band,
        by_finding_kind_band=by_finding_kind_band,
        unmapped_finding_kinds=tuple(fk for fk in f_kinds if fk not in FINDING_KINDS),
        ring_outcomes=ring_outcomes,
        finding_outcomes=finding_outcomes,
    )


def _ring_bands(outcomes: Iterable[RingOutcome]) -> dict[str, BandMetrics]:
    """Recall per size band (bands without rings left out), smallest band first."""
    items = list(outcomes)
    out: dict[str, BandMetrics] = {}
    for b in SIZE_BANDS:
        part = [o for o in items if o.band == b]
        if not part:
            continue
        found = sum(bool(o.finding) for o in part)
        blind = sum(bool(o.finding_any_kind) for o in part)
        out[b] = BandMetrics(
            rings=len(part),
            found=found,
            recall=_ratio(found, len(part)),
            found_any_kind=blind,
            recall_any_kind=_ratio(blind, len(part)),
        )
    return out


def _finding_metrics(outcomes: list[FindingOutcome]) -> FindingKindMetrics:
    matched = sum(bool(o.ring) for o in outcomes)
    blind = sum(bool(o.ring_any_kind) for o in outcomes)
    return FindingKindMetrics(
        findings=len(outcomes),
        matched=matched,
        precision=_ratio(matched, len(outcomes)),
        matched_mapped=matched,
        precision_mapped=_ratio(matched, len(outcomes)),
        matched_any_kind=blind,
        precision_any_kind=_ratio(blind, len(outcomes)),
    )


def _finding_bands(outcomes: Iterable[FindingOutcome]) -> dict[str, FindingKindMetrics]:
    """Precision per finding size band (bands without findings left out)."""
    items = list(outcomes)
    return {
        b: _finding_metrics([o for o in items if o.band == b])
        for b in SIZE_BANDS
        if any(o.band == b for o in items)
    }
