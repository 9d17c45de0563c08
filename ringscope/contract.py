"""The data contract of a marketplace export, as data.

One :class:`TableSpec` per table: its columns with their types, which are
required, the enum values allowed, the key that makes a row unique, and the
references to other tables. Loaders check input against it; stores create
their schema from it; the generator writes it. The normalised form of every
table (what loaders hand to stores and what stores hand back as projections)
uses exactly these column names and these dtypes:

- ``str``: pandas string values (``object``, ``string`` or pandas 3's ``str`` dtype);
  missing values are ``None`` or NaN (test with ``pandas.isna``)
- ``ts``: ``datetime64[us, UTC]``
- ``float``: ``float64`` (NaN when empty)

A row whose key is already stored is a duplicate when its values are the same.
When they differ it is a conflict (rejected), unless every difference is one a
later export may bring to the row (the column's ``update`` rule): a refund or
cancellation of a completed order, a refund time or a stream's end that was not
known yet, an identifier seen earlier or later than stored. Such a row updates
the stored one. The rules only move a row forward, so loading an older export
again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["str", "ts", "float", "roles"]

#: How a later export may change a stored value (see :class:`Column`).
UpdateRule = Literal["fill", "earliest", "latest", "advance"]

ROLES = ("creator", "seller", "buyer")
ENGAGEMENT_KINDS = ("view", "like", "comment", "share", "gift")
ORDER_STATUSES = ("completed", "cancelled", "refunded")
IDENTIFIER_KINDS = ("device", "ip", "payment", "phone", "address")
LABELS = ("abusive", "legit")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True
    enum: tuple[str, ...] | None = None
    non_negative: bool = False
    max_value: float | None = None
    #: What a later export may do to a stored value of this column (``None``: nothing;
    #: any other value is a conflict). ``fill``: set it where it is empty;
    #: ``earliest`` / ``latest``: keep the earlier / later of the two times;
    #: ``advance``: move it to a later stage of :attr:`stages`.
    update: UpdateRule | None = None
    #: For ``advance``: the stages in order, each a tuple of values (values of one
    #: stage never replace each other).
    stages: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    """``column`` must name an existing ``entity`` (``account`` or ``stream``)."""

    column: str
    entity: Literal["account", "stream"]


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    references: tuple[Reference, ...] = field(default_factory=tuple)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def updatable(self) -> tuple[Column, ...]:
        """The columns a later export may change (see the module's docstring)."""
        return tuple(c for c in self.columns if c.update is not None)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


S: ColumnType = "str"
TS: ColumnType = "ts"
F: ColumnType = "float"

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "accounts",
            (
                Column("account_id", S),
                Column("roles", "roles"),
                Column("created_at", TS),
                Column("country", S, required=False),
                Column("status", S, required=False),
            ),
            key=("account_id",),
        ),
        TableSpec(
            "streams",
            (
                Column("stream_id", S),
                Column("creator_id", S),
                Column("started_at", TS),
                Column("ended_at", TS, required=False, update="fill"),
                Column("title", S, required=False),
            ),
            key=("stream_id",),
            references=(Reference("creator_id", "account"),),
        ),
        TableSpec(
            "affiliations",
            (
                Column("creator_id", S),
                Column("seller_id", S),
                Column("commission_rate", F, non_negative=True, max_value=1.0),
                Column("since", TS),
            ),
            key=("creator_id", "seller_id"),
            references=(Reference("creator_id", "account"), Reference("seller_id", "account")),
        ),
        TableSpec(
            "follows",
            (Column("follower_id", S), Column("creator_id", S), Column("ts", TS)),
            key=("follower_id", "creator_id"),
            references=(Reference("follower_id", "account"), Reference("creator_id", "account")),
        ),
        TableSpec(
            "engagements",
            (
                Column("account_id", S),
                Column("stream_id", S),
                Column("kind", S, enum=ENGAGEMENT_KINDS),
                Column("ts", TS),
                Column("amount", F, required=False, non_negative=True),
            ),
            key=("account_id", "stream_id", "kind", "ts"),
            references=(Reference("account_id", "account"), Reference("stream_id", "stream")),
        ),
        TableSpec(
            "orders",
            (
                Column("order_id", S),
                Column("buyer_id", S),
                Column("seller_id", S),
                Column("product_id", S),
                Column("amount", F, non_negative=True),
                Column(
                    "status",
                    S,
                    enum=ORDER_STATUSES,
                    update="advance",
                    stages=(("completed",), ("cancelled", "refunded")),
                ),
                Column("ts", TS),
                Column("creator_id", S, required=False),
                Column("stream_id", S, required=False),
                Column("commission", F, required=False, non_negative=True),
                Column("refunded_at", TS, required=False, update="fill"),
            ),
            key=("order_id",),
            references=(
                Reference("buyer_id", "account"),
                Reference("seller_id", "account"),
                Reference("creator_id", "account"),
                Reference("stream_id", "stream"),
            ),
        ),
        TableSpec(
            "identifiers",
            (
                Column("account_id", S),
                Column("kind", S, enum=IDENTIFIER_KINDS),
                Column("value", S),
                Column("first_seen", TS, update="earliest"),
                Column("last_seen", TS, required=False, update="latest"),
            ),
            key=("account_id", "kind", "value"),
            references=(Reference("account_id", "account"),),
        ),
        TableSpec(
            "labels",
            (
                Column("subject_id", S),
                Column("label", S, enum=LABELS),
                Column("decided_at", TS),
                Column("source", S, required=False),
                Column("note", S, required=False),
            ),
            key=("subject_id", "decided_at"),
            references=(Reference("subject_id", "account"),),
        ),
    )
}

#: The order in which tables load: every reference points to a table loaded earlier.
LOAD_ORDER: tuple[str, ...] = (
    "accounts",
    "streams",
    "affiliations",
    "follows",
    "engagements",
    "orders",
    "identifiers",
    "labels",
)

#: File suffixes a table may come in, in the order they are looked for.
SUFFIXES: tuple[str, ...] = (".parquet", ".csv.gz", ".csv", ".jsonl")

#: Only this table must be present in an export.
REQUIRED_TABLES: tuple[str, ...] = ("accounts",)

#: Longest identifier accepted (characters); longer values are rejected.
MAX_ID_LENGTH = 256
#: Longest free text (titles, notes) accepted (characters).
MAX_TEXT_LENGTH = 4096
