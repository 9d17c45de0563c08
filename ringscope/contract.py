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

Order statuses and identifier kinds are kept as the export gives them (trimmed,
lower-case): real exports say ``returned``, ``chargeback``, ``canceled``,
``imei``, ``email``... :data:`ORDER_STATUS_ALIASES` and
:data:`IDENTIFIER_KIND_ALIASES` list the values known to the default policy's
mapping (``ringscope/default_policy.yaml``, ``mapping``), which detection applies
to turn them into the canonical :data:`ORDER_STATUSES` and
:data:`IDENTIFIER_KINDS` the detectors work on. A value no alias names is still
loaded, and the load report lists it (:attr:`Column.known`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["str", "ts", "float", "roles"]

#: How a later export may change a stored value (see :class:`Column`).
UpdateRule = Literal["fill", "earliest", "latest", "advance"]

ROLES = ("creator", "seller", "buyer")
ENGAGEMENT_KINDS = ("view", "like", "comment", "share", "gift")
#: The order statuses detectors know (a value of an export is mapped to one of them by the
#: policy's ``mapping.order_statuses``, or kept as it is).
ORDER_STATUSES = ("completed", "cancelled", "refunded")
#: The identifier kinds detectors know and weigh (see ``mapping.identifier_kinds``).
IDENTIFIER_KINDS = ("device", "ip", "payment", "phone", "address")

#: The order statuses of real exports that the default policy maps to each canonical status
#: (the canonical value first). ``pending``, ``disputed``, ``refund_requested`` and the like
#: are left out on purpose: they say nothing yet about how the order ended.
ORDER_STATUS_ALIASES: dict[str, tuple[str, ...]] = {
    "completed": ("completed", "complete", "delivered", "shipped", "paid", "fulfilled", "settled"),
    "cancelled": ("cancelled", "canceled", "cancel", "void", "voided"),
    "refunded": ("refunded", "refund", "returned", "chargeback", "charged_back", "reversed"),
}
#: The identifier kinds of real exports that the default policy maps to each canonical kind
#: (the canonical value first). An email address counts as a phone number does: a contact
#: point one person registers and verifies. ``card_bin`` is left out on purpose: a card's
#: first six digits name its bank, shared by millions.
IDENTIFIER_KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "device": (
        "device",
        "device_id",
        "imei",
        "android_id",
        "idfa",
        "idfv",
        "gaid",
        "device_fingerprint",
    ),
    "ip": ("ip", "ip_address", "ipv4", "ipv6"),
    "payment": (
        "payment",
        "payment_method",
        "card",
        "card_hash",
        "card_fingerprint",
        "wallet",
        "bank_account",
        "iban",
    ),
    "phone": ("phone", "phone_number", "mobile", "msisdn", "email", "email_hash"),
    "address": ("address", "shipping_address", "billing_address", "postal_address"),
}
LABELS = ("abusive", "legit")


def _values(aliases: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Every alias of an alias table, in order."""
    return tuple(v for values in aliases.values() for v in values)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True
    enum: tuple[str, ...] | None = None
    #: A code kept as given, trimmed and lower-case, up to :data:`MAX_CODE_LENGTH`
    #: characters; the values outside ``known`` (those no alias of the default
    #: policy's mapping names) are loaded and listed in the load report.
    known: tuple[str, ...] | None = None
    non_negative: bool = False
    max_value: float | None = None
    #: What a later export may do to a stored value of this column (``None``: nothing;
    #: any other value is a conflict). ``fill``: set it where it is empty;
    #: ``earliest`` / ``latest``: keep the earlier / later of the two times;
    #: ``advance``: move it to a later stage of :attr:`stages`.
    update: UpdateRule | None = None
    #: For ``advance``: the stages in order, each a tuple of groups of values. A value
    #: moves to a value of a later stage, never back (an older export brings the earlier
    #: stage: the stored value stays); another value of its own group is the same news
    #: (the stored value stays); a value of another group of the same stage is a
    #: conflict. Values no group names form one group of the first stage.
    stages: tuple[tuple[tuple[str, ...], ...], ...] = ()


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
                    known=_values(ORDER_STATUS_ALIASES),
                    update="advance",
                    # unknown (pending, disputed...) -> completed -> cancelled or refunded
                    stages=(
                        (),
                        (ORDER_STATUS_ALIASES["completed"],),
                        (ORDER_STATUS_ALIASES["cancelled"], ORDER_STATUS_ALIASES["refunded"]),
                    ),
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
                Column("kind", S, known=_values(IDENTIFIER_KIND_ALIASES)),
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
#: Longest order status or identifier kind accepted (characters).
MAX_CODE_LENGTH = 64
