"""``ringscope neo4j-import``: a first load into an empty Neo4j database by bulk import.

The store side (the side file, the import CSV files, ``neo4j-admin``, the server's
first start) is :mod:`ringscope.graphs.neo4j_bulk`; this module gives it the load of
the export: the same reading, checks and rejects as :func:`~ringscope.loaders.pipeline.load_export`,
into the new side file, and the refusal of an export with any rejected row or
unreadable table (nothing is imported; the message quotes the first problems with
file, row, column and reason, and the rejects files are written as usual).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pandas as pd

from ringscope.errors import InputError, Problem
from ringscope.graphs import neo4j_bulk
from ringscope.graphs.neo4j_bulk import BulkResult, ImportFiles, LoadInto
from ringscope.graphs.neo4j_store import SideFile
from ringscope.loaders.pipeline import Progress, default_rejects_dir, load_export
from ringscope.loaders.read import DEFAULT_BATCH_ROWS
from ringscope.loaders.validate import rejects_to_problems
from ringscope.model import LoadReport

#: Problems quoted in the message that refuses an export with rejected rows.
MAX_PROBLEMS_SHOWN: Final = 10


def export_loader(
    data_dir: str | Path, *, rejects_dir: str | Path | None = None, **options: Any
) -> LoadInto:
    """The load of the export in ``data_dir`` into a bulk import's side file: as
    :func:`~ringscope.loaders.pipeline.load_export` (``options``: its ``batch_rows``,
    ``progress``, ``earliest``, ``latest``), then an :class:`~ringscope.errors.InputError`
    when any row was rejected or a table could not be read."""
    folder = Path(data_dir)
    rejects = Path(rejects_dir) if rejects_dir is not None else default_rejects_dir(folder)

    def load(side: SideFile) -> LoadReport:
        report = load_export(side, folder, rejects_dir=rejects, **options)
        if report.rejected or report.failed:
            raise _refusal(report, folder, rejects)
        return report

    return load


def _refusal(report: LoadReport, data_dir: Path, rejects_dir: Path) -> InputError:
    """The error that refuses an export with rejected rows or unreadable tables."""
    problems: list[Problem] = []
    for table in report.tables.values():
        if table.error:
            problems.append(Problem(table.file or str(data_dir), None, None, table.error))
    for table in report.tables.values():
        if table.rejects_file and len(problems) < MAX_PROBLEMS_SHOWN:
            rejects = pd.read_csv(table.rejects_file, dtype=str, keep_default_na=False)
            rejects["row"] = pd.to_numeric(rejects["row"], errors="coerce")
            problems.extend(rejects_to_problems(rejects)[: MAX_PROBLEMS_SHOWN - len(problems)])
    shown = "\n".join(f"  {p}" for p in problems[:MAX_PROBLEMS_SHOWN])
    total = report.rejected
    return InputError(
        f"{data_dir}: {total:,} rejected row(s)"
        + (
            f" and {sum(1 for t in report.tables.values() if t.error)} unreadable table(s)"
            if report.failed
            else ""
        )
        + f"; a bulk import takes only an export without problems, nothing was imported:\n"
        f"{shown}\n(rejects files in {rejects_dir}; fix the export, or load it with "
        "`ringscope load`, which quarantines the bad rows and loads the rest)"
    )


def prepare_import(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    columnar_path: str | Path,
    seconds: dict[str, float] | None = None,
    on_phase: Callable[[str], None] | None = None,
    **options: Any,
) -> tuple[LoadReport, ImportFiles]:
    """Load and check the export in ``data_dir`` into a new side file (``options``: those
    of :func:`export_loader`) and write the import CSV files of its graph into ``out_dir``
    (:func:`ringscope.graphs.neo4j_bulk.prepare_import`).

    Raises
    ------
    InputError
        The export has rejected rows or a table that cannot be read: the message
        quotes the first problems (file, row, column, reason); the side file is
        left as it was and no CSV file is written.
    StoreError
        The side file holds data already, or cannot be written.
    """
    load = export_loader(data_dir, **options)
    return neo4j_bulk.prepare_import(
        load, out_dir, columnar_path=columnar_path, seconds=seconds, on_phase=on_phase
    )


def bulk_import(
    data_dir: str | Path,
    home: str | Path,
    *,
    columnar_path: str | Path,
    rejects_dir: str | Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    **options: Any,
) -> BulkResult:
    """First load of the export in ``data_dir`` into an empty, stopped Neo4j database of
    the home ``home``, by bulk import (:func:`ringscope.graphs.neo4j_bulk.bulk_import`,
    whose ``options`` these are: ``database``, ``csv_dir``, ``start``, ``heap``, ...).

    Raises
    ------
    InputError
        The export has rejected rows or unreadable tables (nothing imported).
    StoreError
        The server is running, the database or the side file is not empty, or the
        import failed.
    """
    load = export_loader(
        data_dir, rejects_dir=rejects_dir, batch_rows=batch_rows, progress=progress
    )
    return neo4j_bulk.bulk_import(load, home, columnar_path=columnar_path, **options)
