"""Rows of a later export that update stored rows, in the DuckDB tables of both stores.

A batch row whose key is stored is a duplicate (same values), an update (every
difference is allowed by its column's ``update`` rule, see
:mod:`ringscope.contract`, and applying the rules changes the stored row) or a
conflict. A row whose differences the rules allow but which changes nothing (an
older export loaded again: a refunded order seen as completed; the same news in
other words: a ``returned`` order seen as ``chargeback``) is a duplicate.

An update keeps the stored row's ``_load_id`` and first copies the row as it was
into ``_prior_<table>`` with the updating load's id, once per load, so that
rolling the load back restores it (:func:`restore`); a load that finished
forgets its copies (:func:`forget`).
"""

from __future__ import annotations

from typing import Any

import duckdb

from ringscope.contract import TABLES, Column, TableSpec


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _groups(col: Column) -> list[tuple[int, tuple[str, ...]]]:
    """``(stage, values)`` of every group of the column's stages, in order."""
    return [(i, values) for i, stage in enumerate(col.stages) for values in stage]


def _stage(col: Column, ref: str) -> str:
    """SQL: the stage of value ``ref`` (values no group names: the first stage)."""
    whens = " ".join(f"WHEN {_lit(v)} THEN {i}" for i, values in _groups(col) for v in values)
    return f"(CASE {ref} {whens} ELSE 0 END)"


def _group(col: Column, ref: str) -> str:
    """SQL: the group of value ``ref`` (values no group names: one group, -1)."""
    whens = " ".join(
        f"WHEN {_lit(v)} THEN {g}" for g, (_, values) in enumerate(_groups(col)) for v in values
    )
    return f"(CASE {ref} {whens} ELSE -1 END)"


def _allowed(col: Column, s: str, t: str) -> str:
    """SQL: the incoming value ``s`` may be applied to the stored value ``t``."""
    if col.update in ("earliest", "latest"):
        return "TRUE"
    if col.update == "fill":
        return f"({s} IS NULL OR {t} IS NULL OR {s} = {t})"
    if col.update == "advance":
        # another stage (later: applied; earlier: older news, ignored) or the same news
        # in other words; a value of another group of the same stage is a conflict
        return (
            f"({s} IS NOT DISTINCT FROM {t} OR {_stage(col, s)} <> {_stage(col, t)} "
            f"OR {_group(col, s)} = {_group(col, t)})"
        )
    raise ValueError(f"unknown update rule {col.update!r} of column {col.name!r}")


def merged(col: Column, s: str, t: str) -> str:
    """SQL: the value of the column once the incoming ``s`` is applied to the stored ``t``."""
    if col.update == "fill":
        return f"coalesce({t}, {s})"
    if col.update in ("earliest", "latest"):
        pick = "<" if col.update == "earliest" else ">"
        return (
            f"(CASE WHEN {s} IS NULL THEN {t} "
            f"WHEN {t} IS NULL OR {s} {pick} {t} THEN {s} ELSE {t} END)"
        )
    if col.update == "advance":
        return f"(CASE WHEN {_stage(col, s)} > {_stage(col, t)} THEN {s} ELSE {t} END)"
    raise ValueError(f"unknown update rule {col.update!r} of column {col.name!r}")


def classify(spec: TableSpec, s: str = "s", t: str = "t") -> tuple[str, str]:
    """SQL for a batch row ``s`` matched to the stored row ``t`` of the same key.

    Returns ``(duplicate, update)``: boolean expressions, the first true when the
    row changes nothing (same values, or changes its rules allow that leave the
    stored row as it is), the second when the rules allow every difference and
    the stored row changes. A row for which both are false is a conflict.
    """
    keys = set(spec.key)
    others = [c for c in spec.columns if c.name not in keys]
    same = " AND ".join(f"{s}.{_q(c.name)} IS NOT DISTINCT FROM {t}.{_q(c.name)}" for c in others)
    same = same or "TRUE"
    rules = spec.updatable
    if not rules:
        return f"({same})", "FALSE"
    fixed = [
        f"{s}.{_q(c.name)} IS NOT DISTINCT FROM {t}.{_q(c.name)}"
        for c in others
        if c.update is None
    ]
    allowed = " AND ".join(
        fixed + [_allowed(c, f"{s}.{_q(c.name)}", f"{t}.{_q(c.name)}") for c in rules]
    )
    changes = " OR ".join(
        f"{merged(c, f'{s}.{_q(c.name)}', f'{t}.{_q(c.name)}')} IS DISTINCT FROM {t}.{_q(c.name)}"
        for c in rules
    )
    duplicate = f"(({same}) OR (({allowed}) AND NOT ({changes})))"
    update = f"(NOT ({same}) AND ({allowed}) AND ({changes}))"
    return duplicate, update


def _prior(table: str) -> str:
    return _q(f"_prior_{table}")


def _ensure_prior(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS main.{_prior(table)} AS "
        f"SELECT *, NULL::VARCHAR AS _by_load FROM main.{_q(table)} WHERE FALSE"
    )


def _has_prior(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = $t",
        {"t": f"_prior_{table}"},
    ).fetchone()
    return bool(row and row[0])


def apply(con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: str, load_id: str) -> None:
    """Apply the update rows in relation ``rows`` (the table's columns) to the stored
    rows of the same key, keeping a copy of each stored row as it was before
    ``load_id`` first changed it."""
    table = spec.name
    _ensure_prior(con, table)
    on = " AND ".join(f"u.{_q(k)} = t.{_q(k)}" for k in spec.key)
    seen = " AND ".join(f"p.{_q(k)} = t.{_q(k)}" for k in spec.key)
    con.execute(
        f"INSERT INTO main.{_prior(table)} SELECT t.*, $load_id FROM main.{_q(table)} t "
        f"SEMI JOIN {rows} u ON {on} WHERE NOT EXISTS (SELECT 1 FROM main.{_prior(table)} p "
        f"WHERE p._by_load = $load_id AND {seen})",
        {"load_id": load_id},
    )
    sets = ", ".join(
        f"{_q(c.name)} = {merged(c, f'u.{_q(c.name)}', f't.{_q(c.name)}')}" for c in spec.updatable
    )
    con.execute(f"UPDATE main.{_q(table)} AS t SET {sets} FROM {rows} u WHERE {on}")


def restore(con: duckdb.DuckDBPyConnection, spec: TableSpec, load_id: str) -> str | None:
    """Put back the stored rows ``load_id`` updated, as they were before it.

    Returns the name of a temporary relation holding the restored rows (the
    table's columns), or ``None`` when the load updated nothing. The copies are
    removed."""
    table = spec.name
    if not _has_prior(con, table):
        return None
    params: dict[str, Any] = {"load_id": load_id}
    cols = ", ".join(_q(c) for c in spec.names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rs_restored AS SELECT {cols} "
        f"FROM main.{_prior(table)} WHERE _by_load = $load_id",
        params,
    )
    row = con.execute("SELECT count(*) FROM _rs_restored").fetchone()
    if not row or not row[0]:
        con.execute("DROP TABLE _rs_restored")
        return None
    on = " AND ".join(f"p.{_q(k)} = t.{_q(k)}" for k in spec.key)
    sets = ", ".join(f"{_q(c.name)} = p.{_q(c.name)}" for c in spec.updatable)
    con.execute(f"UPDATE main.{_q(table)} AS t SET {sets} FROM _rs_restored p WHERE {on}")
    con.execute(f"DELETE FROM main.{_prior(table)} WHERE _by_load = $load_id", params)
    return "_rs_restored"


def forget(con: duckdb.DuckDBPyConnection, load_id: str) -> None:
    """Drop the copies of rows that load ``load_id`` updated (the load is complete)."""
    for spec in TABLES.values():
        if spec.updatable and _has_prior(con, spec.name):
            con.execute(
                f"DELETE FROM main.{_prior(spec.name)} WHERE _by_load = $load_id",
                {"load_id": load_id},
            )
