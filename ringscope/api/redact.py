"""Redaction: what a viewer sees, and what a redacted case file holds.

The rule. Identifier values (devices, IPs, payment methods, phones, addresses: every kind
of identifier) and, in a case file made with ``--redact-accounts``, account ids are
replaced by keyed hashes (HMAC-SHA256 of the value, its first 16 hex digits after the
kind: ``ip-3fa4…``, ``acct-…``) in the data itself, where a viewer's answer or a case
file is assembled, before anything is formatted. Findings, subgraphs, paths, nodes,
decisions and rows go through a :class:`Redaction` once; labels, tooltips, tables, CSV,
JSON and HTML are made from what comes out. So a label shortened afterwards shows the
start of a token, never the start of a value, and a field that a renderer adds later
shows tokens too.

A :class:`Redaction` rewrites every string of every field of what it is given (dict keys,
node ids such as ``Identifier:ip:1.2.3.4`` and free text such as explanations and
decision notes included), so a new field that carries a known value is redacted without
being named here; a value of a type it does not know is refused (``TypeError``), not
passed through. The values it knows are gathered from where the data model puts them
(:func:`known_in`): identifier nodes and references, rows with a ``kind`` and a
``value`` and fields named after an identifier kind; for accounts, account nodes,
members, beneficiaries and fields that name accounts (``buyer_id``, ``accounts``, ...).
Callers add what the store knows: the identifiers of the accounts a finding names
(:func:`identifiers_of`), and, for ``--redact-accounts``, every word of the case's data
that is a stored account id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import numbers
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ringscope.contract import IDENTIFIER_KINDS
from ringscope.errors import ConfigError
from ringscope.model import Finding, NodeRef

if TYPE_CHECKING:
    from ringscope.api.queries import RunCache
    from ringscope.api.render_cache import RenderCache
    from ringscope.graphs.store import GraphStore
    from ringscope.model import Run

T = TypeVar("T")

#: Hex digits of HMAC-SHA256 kept in a token.
TOKEN_DIGITS = 16
#: Findings kept redacted per redaction (then forgotten, and kept again).
FINDINGS_KEPT = 10_000
#: The prefix of an account's token.
ACCOUNT_PREFIX = "acct"
#: Fields (of rows, properties and domain objects) whose values are account ids.
ACCOUNT_KEYS = frozenset(
    {
        "account_id",
        "accounts",
        "buyer_id",
        "seller_id",
        "creator_id",
        "follower_id",
        "subject_id",
        "members",
        "member_ids",
    }
)
#: A reference to an identifier in text: ``Identifier:ip:1.2.3.4`` or ``ip:1.2.3.4``.
_IDENTIFIER_REF = re.compile(r"(?:Identifier:)?([a-z_]+):(\S.*)", re.S)
#: A word of free text: what could be an id in a sentence.
_WORD = re.compile(r"[^\s,;()\[\]{}<>\"'|`]+")
#: Types of values that hold no text, left as they are.
_AS_IS = frozenset({int, float, bool, type(None), datetime, date})
#: Characters that continue an id: a value is replaced only where none is next to it.
_ID_CHARS = re.compile(r"[\w-]")
#: Where a value may start: where no such character comes before.
_STARTS = re.compile(r"(?<![\w-])")


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Keyed hashes: the same value gives the same token under the same key, in every
    answer to a viewer and in every case file made with that key."""

    key: bytes

    @staticmethod
    def from_key(key: str) -> Tokens:
        if not key:
            raise ConfigError(
                "redaction needs a key: set RINGSCOPE_REDACTION_KEY (kept secret; the same key "
                "gives the same tokens across exports)"
            )
        return Tokens(key.encode())

    def of(self, prefix: str, value: str) -> str:
        digest = hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()
        return f"{prefix}-{digest[:TOKEN_DIGITS]}"


@dataclasses.dataclass
class Known:
    """Values to hide: identifier values (with their kind) and account ids."""

    identifiers: dict[str, str] = dataclasses.field(default_factory=dict)  # value -> kind
    accounts: set[str] = dataclasses.field(default_factory=set)

    def update(self, other: Known) -> Known:
        for v, k in other.identifiers.items():
            self.identifiers.setdefault(v, k)
        self.accounts |= other.accounts
        return self


class Redaction:
    """Replaces known values by their tokens in anything made of strings, numbers, dates,
    lists, tuples, dicts and dataclasses (the domain objects): a whole string that is a
    value, and a value inside a string where no letter, digit, ``_`` or ``-`` touches it.

    The identity (``Redaction.none()``) returns what it is given, untouched."""

    def __init__(self, tokens: Tokens | None, known: Known, *, accounts: bool) -> None:
        self.tokens = tokens
        self.accounts = accounts
        self.known = known
        mapping: dict[str, str] = {}
        if tokens is not None:
            for value, kind in sorted(known.identifiers.items()):
                if value:
                    mapping[value] = tokens.of(kind or "id", value)
            if accounts:
                for a in sorted(known.accounts):
                    if a:
                        mapping.setdefault(a, tokens.of(ACCOUNT_PREFIX, a))
        self._mapping = mapping
        by_length: dict[int, set[str]] = {}
        for v in mapping:
            by_length.setdefault(len(v), set()).add(v)
        self._lengths = sorted(by_length, reverse=True)
        self._by_length = by_length
        self._shortest = self._lengths[-1] if self._lengths else 0
        # the first characters of every value: where none starts, no value does
        self._head = min(self._shortest, 4)
        self._heads = {v[: self._head] for v in mapping}
        # findings (a run's, kept by the app) redacted once
        self._findings: dict[int, tuple[Finding, Finding]] = {}

    @staticmethod
    def none() -> Redaction:
        return Redaction(None, Known(), accounts=False)

    @property
    def active(self) -> bool:
        return self.tokens is not None

    def including(self, *shown: Any, more: Known | None = None) -> Redaction:
        """This redaction, knowing also the values in ``shown`` (and ``more``)."""
        if not self.active:
            return self
        known = Known(dict(self.known.identifiers), set(self.known.accounts))
        known.update(known_in(*shown))
        if more is not None:
            known.update(more)
        return Redaction(self.tokens, known, accounts=self.accounts)

    # ------------------------------------------------------------------ applying

    def text(self, s: str) -> str:
        """``s`` with every known value in it replaced by its token."""
        hit = self._mapping.get(s)
        if hit is not None or len(s) < self._shortest:
            return s if hit is None else hit
        out: list[str] = []
        last = 0
        n = len(s)
        heads, head = self._heads, self._head
        for start in _STARTS.finditer(s):
            i = start.start()
            if i < last or s[i : i + head] not in heads:
                continue
            for length in self._lengths:
                j = i + length
                if j > n or (j < n and _ID_CHARS.match(s, j)):
                    continue
                piece = s[i:j]
                if piece in self._by_length[length]:
                    out += (s[last:i], self._mapping[piece])
                    last = j
                    break
        if not out:
            return s
        out.append(s[last:])
        return "".join(out)

    def __call__(self, obj: T) -> T:
        """``obj`` with every known value replaced, in every string of every field. A
        finding is redacted once per redaction (the app keeps a redaction per run)."""
        if not self._mapping:
            return obj
        if not isinstance(obj, Finding):
            out: T = _Walk(self.text).walk(obj)
            return out
        done = self._findings.get(id(obj))
        if done is None or done[0] is not obj:
            if len(self._findings) >= FINDINGS_KEPT:
                self._findings.clear()
            # holds ``obj``: its id is not given to another object meanwhile
            done = self._findings[id(obj)] = (obj, _Walk(self.text).walk(obj))
        shown: T = done[1]  # type: ignore[assignment]
        return shown


class _Walk:
    """One walk of :meth:`Redaction.__call__`: rebuilds what it is given with every string
    through ``text``, each distinct string once (keys, kinds and statuses repeat in every
    row)."""

    __slots__ = ("_seen", "_text")

    def __init__(self, text: Callable[[str], str]) -> None:
        self._text = text
        self._seen: dict[str, str] = {}

    def text(self, s: str) -> str:
        hit = self._seen.get(s)
        if hit is None:
            hit = self._seen[s] = self._text(s)
        return hit

    def leaf(self, x: Any) -> Any:
        """:meth:`walk`, with the most common values (text, numbers) handled in place."""
        kind = type(x)
        if kind is str:
            return self.text(x)
        return x if kind in _AS_IS else self.walk(x)

    def walk(self, x: Any) -> Any:
        if isinstance(x, str):
            return self.text(x)
        if x is None or isinstance(x, (bool, numbers.Number, datetime, date, time, timedelta)):
            return x
        if isinstance(x, dict):
            return {self.leaf(k): self.leaf(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self.leaf(v) for v in x]
        if isinstance(x, tuple):
            return tuple(self.leaf(v) for v in x)
        if isinstance(x, (set, frozenset)):
            return type(x)(self.leaf(v) for v in x)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            fields = [f for f in dataclasses.fields(x) if f.init]
            changes = {f.name: self.leaf(getattr(x, f.name)) for f in fields}
            return dataclasses.replace(x, **changes)
        raise TypeError(f"cannot redact a {type(x).__name__}: say how in ringscope.api.redact")


# ----------------------------------------------------------------------------- known values


def _parts(x: Any) -> Iterator[tuple[str | None, Any]]:
    """Every string, node reference and dict in ``x`` (domain objects, rows, lists), with
    the name of the field or key it is under (a dict's keys come as strings under none)."""
    stack: list[tuple[str | None, Any]] = [(None, x)]
    while stack:
        key, item = stack.pop()
        kind = type(item)
        if kind is str or kind is NodeRef:
            yield key, item
        elif kind in _AS_IS:
            continue
        elif isinstance(item, dict):
            yield key, item
            for k, v in item.items():
                stack.append((None, k))
                stack.append((k if isinstance(k, str) else None, v))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((key, v) for v in item)
        elif isinstance(item, (str, NodeRef)):
            yield key, item
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend((f.name, getattr(item, f.name)) for f in dataclasses.fields(item))


def known_in(*shown: Any, kinds: Iterable[str] = IDENTIFIER_KINDS) -> Known:
    """The identifier values and account ids that ``shown`` carries where the data model
    puts them (see the module docstring)."""
    kinds = set(kinds)
    known = Known()
    rows: list[tuple[str, str]] = []  # (kind, value) of rows, once every kind is known
    for key, x in (part for obj in shown for part in _parts(obj)):
        if isinstance(x, NodeRef):
            if x.label == "Identifier":
                kind, _, value = x.id.partition(":")
                kinds.add(kind)
                known.identifiers.setdefault(value, kind)
            elif x.label == "Account":
                known.accounts.add(x.id)
        elif isinstance(x, dict):
            row_kind, row_value = x.get("kind"), x.get("value")
            if isinstance(row_kind, str) and isinstance(row_value, (str, int)) and row_value != "":
                rows.append((row_kind, str(row_value)))
        elif key in ACCOUNT_KEYS:
            known.accounts.add(x)
        elif key is not None and key in kinds:
            rows.append((key, x))
        elif ":" in x and (m := _IDENTIFIER_REF.fullmatch(x)) is not None:
            rows.append((m.group(1), m.group(2)))
    for kind, value in rows:
        if kind in kinds:
            known.identifiers.setdefault(value, kind)
    return known


def words_in(*shown: Any) -> set[str]:
    """Every string in ``shown``, whole and word by word: what may name an account."""
    out: set[str] = set()
    for _, x in (part for obj in shown for part in _parts(obj)):
        if isinstance(x, str):
            out.add(x)
            for w in _WORD.findall(x):
                out.update((w, w.rstrip(".:!?"), w.removesuffix("'s")))
    out.discard("")
    return out


def identifiers_of(store: GraphStore, accounts: Iterable[str]) -> dict[str, str]:
    """The identifier values (value -> kind) of ``accounts``, from the store's table."""
    ids = set(accounts)
    if not ids:
        return {}
    idf = store.table("identifiers", columns=["account_id", "kind", "value"])
    idf = idf[idf["account_id"].astype(str).isin(ids)]
    return {
        str(v): str(k) for k, v in sorted(zip(idf["kind"], idf["value"], strict=True)) if v != ""
    }


def named_accounts(findings: Iterable[Finding]) -> set[str]:
    """The members and beneficiaries of ``findings``."""
    out: set[str] = set()
    for f in findings:
        out.update(f.member_ids)
        out.update(b.account_id for b in f.beneficiaries)
    return out


def for_viewer(key: str | None, *shown: Any, known: Known | None = None) -> Redaction:
    """What a caller sees of ``shown``: redacted with ``key`` (a viewer), or as it is
    (``key`` ``None``: investigators and admins)."""
    if key is None:
        return Redaction.none()
    return Redaction(Tokens.from_key(key), Known(), accounts=False).including(*shown, more=known)


def for_run(
    key: str | None,
    store: GraphStore,
    run: Run | None,
    findings: RunCache,
    kept: RenderCache[Redaction],
) -> Redaction:
    """What a caller sees of the findings of ``run`` (and of their decisions): redacted with
    ``key`` (a viewer), knowing every identifier value their data carries and every
    identifier of every account they name; made once per run, data and key (kept in
    ``kept``). ``key`` ``None``: as it is."""
    if key is None:
        return Redaction.none()
    if run is None:
        return for_viewer(key)
    from ringscope.api.render_cache import key_digest

    finished = run.finished_at.isoformat() if run.finished_at else ""
    cache_key = ("redaction", run.id, finished, store.fingerprint(), key_digest(key))

    def make() -> Redaction:
        fs = findings.findings(store, run)
        known = Known(identifiers_of(store, named_accounts(fs)))
        return for_viewer(key, *fs, known=known)

    return kept.get(cache_key, make)
