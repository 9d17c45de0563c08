"""Loading a marketplace export into a store: read, check, quarantine, write.

:func:`load_export` is the load; :func:`check_export` runs the same reading
and checking without a store; :func:`read_table` reads and checks one file
into one normalised frame.

Rejects files
-------------
Rows that fail go to ``<rejects_dir>/<table>.rejects.csv``, one line per
rejected row: ``file, row, column, reason`` followed by the table's contract
columns holding the row's original values as text (the values of a row that
the reader could not take apart are left empty; its reason quotes it). After
removing the first four columns and fixing the values, the file can be loaded
again as ``<table>.csv``. The default ``rejects_dir`` is a folder beside the
export named after it, ``<data_dir>.rejects`` (``exports/2026-11-27`` ->
``exports/2026-11-27.rejects``): next to the data it came from, yet outside the
export so that it never changes the export's fingerprint. Each load replaces
the rejects files of the tables it reads; a table without rejects leaves no
file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from queue import Full, Queue
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from ringscope.contract import LOAD_ORDER, REQUIRED_TABLES, SUFFIXES, TABLES, TableSpec
from ringscope.errors import InputError, LoadError, Problem, RingscopeError, StoreError
from ringscope.graphs.store import LoadTarget
from ringscope.loaders.read import (
    DEFAULT_BATCH_ROWS,
    ExactReadNeeded,
    RawChunk,
    iter_raw_chunks,
    table_file,
)
from ringscope.loaders.validate import (
    DEFAULT_EARLIEST,
    REJECT_COLUMNS,
    CheckedChunk,
    KnownIds,
    check_chunk,
    rejects_to_problems,
)
from ringscope.model import LoadReport, TableReport

if TYPE_CHECKING:
    from ringscope.algorithms.base import MarketTables

#: ``progress(table, rows_done)``, called after every chunk (and with 0 when a table starts).
Progress = Callable[[str, int], None]

#: Reason given to rows whose key the store already holds with other values.
CONFLICT_REASON = "already loaded with different values"

#: Tables whose keys are the entities that references name.
_ENTITY_OF: dict[str, Any] = {"accounts": "account", "streams": "stream"}


# --------------------------------------------------------------------------- files and fingerprint


def default_rejects_dir(data_dir: str | Path) -> Path:
    """``<data_dir>.rejects`` beside the export (see the module docstring)."""
    folder = Path(data_dir).resolve()
    return folder.parent / f"{folder.name}.rejects"


def export_files(data_dir: str | Path) -> list[Path]:
    """Every file of ``data_dir`` that holds a table of the contract, sorted by name."""
    folder = Path(data_dir)
    found = [folder / f"{t}{s}" for t in LOAD_ORDER for s in SUFFIXES]
    return sorted((p for p in found if p.is_file()), key=lambda p: p.name)


def fingerprint_export(data_dir: str | Path) -> str:
    """SHA-256 (hex) over the names, sizes and bytes of the export's table files.

    Files are streamed in 1 MiB pieces, so memory does not grow with their size.
    """
    h = hashlib.sha256()
    for path in export_files(data_dir):
        h.update(path.name.encode() + b"\x00")
        h.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while piece := handle.read(1 << 20):
                h.update(piece)
    return h.hexdigest()


def _check_data_dir(data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise InputError(Problem(str(data_dir), None, None, "not a folder"))
    for table in REQUIRED_TABLES:
        if not any((data_dir / f"{table}{s}").is_file() for s in SUFFIXES):
            names = ", ".join(f"{table}{s}" for s in SUFFIXES)
            raise InputError(
                Problem(
                    str(data_dir), None, None, f"required table {table!r} missing (none of {names})"
                )
            )


# --------------------------------------------------------------------------- rejects files

#: Line end of rejects files (RFC 4180's). With it, Python's CSV writer quotes every
#: value holding a carriage return or a line feed: with a bare ``\n`` it leaves a lone
#: ``\r`` unquoted, and every CSV reader then ends the record there.
_CSV_EOL = "\r\n"


class _RejectsFile:
    """Appends the rejects of one table to a CSV file, opened on first use."""

    def __init__(self, path: Path | None, spec: TableSpec, collect: list[Problem] | None) -> None:
        self.path = path
        self.spec = spec
        self.collect = collect
        self.handle: IO[str] | None = None
        self.mark = len(collect) if collect is not None else 0
        self._remove()

    def _remove(self) -> None:
        try:
            if self.path is not None and self.path.exists():
                self.path.unlink()
        except OSError as exc:
            raise LoadError(f"cannot remove the old rejects file {self.path}: {exc}") from exc

    def write(self, rejects: pd.DataFrame) -> None:
        if rejects.empty:
            return
        if self.collect is not None:
            self.collect.extend(rejects_to_problems(rejects))
        if self.path is None:
            return
        try:
            if self.handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.handle = self.path.open("w", encoding="utf-8", newline="")
                rejects.iloc[:0].to_csv(self.handle, index=False, lineterminator=_CSV_EOL)
            rejects.to_csv(self.handle, index=False, header=False, lineterminator=_CSV_EOL)
        except OSError as exc:
            raise LoadError(f"cannot write the rejects file {self.path}: {exc}") from exc

    @property
    def written(self) -> str | None:
        return str(self.path) if self.handle is not None and self.path is not None else None

    def reset(self) -> None:
        """Forget what was written (the table is read again)."""
        self.close()
        self._remove()
        self.handle = None
        if self.collect is not None:
            del self.collect[self.mark :]

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):  # a full disk: the write said so already
                self.handle.close()


# --------------------------------------------------------------------------- sinks


class _Sink(Protocol):
    def write(self, table: str, checked: CheckedChunk) -> tuple[int, int, int, pd.DataFrame]: ...

    def rollback(self, table: str) -> None: ...


@dataclass(slots=True)
class _StoreSink:
    store: LoadTarget
    load_id: str

    def write(self, table: str, checked: CheckedChunk) -> tuple[int, int, int, pd.DataFrame]:
        frame = checked.frame
        if frame.empty:
            return 0, 0, 0, _empty_rejects(TABLES[table])
        with _store_errors(f"write {table}"):
            result = self.store.write_batch(table, frame, self.load_id)
        conflicts = np.asarray(result.conflicts, dtype=np.int64)
        rejects = _conflict_rejects(checked, conflicts)
        return result.inserted, result.updated, result.duplicates, rejects

    def rollback(self, table: str) -> None:
        with _store_errors(f"roll back {table}"):
            self.store.rollback_load(self.load_id, table)


@contextlib.contextmanager
def _store_errors(what: str) -> Iterator[None]:
    """Any failure inside a store call as a ``StoreError`` (the stores translate
    their drivers' errors; this catches the rest: memory, a driver's own bug)."""
    try:
        yield
    except RingscopeError:
        raise
    except Exception as exc:
        raise StoreError(f"{what}: {_why(exc)}") from exc


def _why(exc: BaseException) -> str:
    """An unexpected exception in a few words: its type and first line."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    if isinstance(exc, MemoryError):
        return f"out of memory ({type(exc).__name__}{': ' + text if text else ''})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(slots=True)
class _CheckSink:
    """Keeps nothing: every row that passes counts as loaded."""

    def write(self, table: str, checked: CheckedChunk) -> tuple[int, int, int, pd.DataFrame]:
        return len(checked.frame), 0, 0, _empty_rejects(TABLES[table])

    def rollback(self, table: str) -> None:
        return None


def _empty_rejects(spec: TableSpec) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in (*REJECT_COLUMNS, *spec.names)})


def _conflict_rejects(checked: CheckedChunk, positions: np.ndarray) -> pd.DataFrame:
    spec = TABLES[checked.table]
    if not len(positions):
        return _empty_rejects(spec)
    rows = checked.frame.iloc[positions]
    out = pd.DataFrame(
        {
            "file": checked.file,
            "row": checked.rows[positions],
            "column": "|".join(spec.key),
            "reason": CONFLICT_REASON,
        }
    )
    for name in spec.names:
        values = rows[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            text = [v.isoformat() if not pd.isna(v) else "" for v in values]
        else:
            text = ["" if pd.isna(v) else str(v) for v in values]
        out[name] = text
    return out


# --------------------------------------------------------------------------- one table

_DONE = object()


@contextlib.contextmanager
def _prefetch(items: Iterator[CheckedChunk], depth: int = 2) -> Iterator[Iterator[CheckedChunk]]:
    """Run ``items`` in a background thread, ``depth`` chunks ahead of the consumer.

    Reading and checking the next chunk (Arrow and pandas release the GIL for
    most of it) then overlaps with the store writing the current one. Errors
    raised by ``items`` are raised again in the consumer; leaving the ``with``
    block early stops the thread.
    """
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    def consume() -> Iterator[CheckedChunk]:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=work, name="ringscope-check", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


@dataclass(slots=True)
class _Options:
    batch_rows: int
    earliest: datetime
    latest: datetime | None
    progress: Progress | None


def _load_table(
    spec: TableSpec,
    path: Path,
    sink: _Sink,
    known: KnownIds,
    rejects: _RejectsFile,
    opts: _Options,
) -> TableReport:
    entity = _ENTITY_OF.get(spec.name)
    report = TableReport(table=spec.name, file=str(path))
    for exact in (False, True):
        report = TableReport(table=spec.name, file=str(path))
        if opts.progress:
            opts.progress(spec.name, 0)
        checked = _checked(
            path, spec, known, opts.batch_rows, exact, earliest=opts.earliest, latest=opts.latest
        )
        try:
            with _prefetch(checked) as chunks:
                for chunk in chunks:
                    _load_chunk(spec, chunk, sink, known, rejects, opts, report, entity)
            break
        except ExactReadNeeded:
            _undo(spec, sink, known, rejects, entity)
        except InputError as exc:
            # The file is refused whole: the rows rejected before are moot (and, for a
            # decompression bomb, the bomb's own expansion).
            _undo(spec, sink, known, rejects, entity)
            report.error = str(exc)
            report.loaded = report.updated = 0
            break
        except StoreError as exc:
            undone = _undo(spec, sink, known, rejects, entity, keep_rejects=True, quiet=True)
            raise StoreError(_store_failed(spec.name, path, report.read, exc, undone)) from exc
        except LoadError as exc:
            undone = _undo(spec, sink, known, rejects, entity, keep_rejects=True, quiet=True)
            raise LoadError(_load_failed(spec.name, path, report.read, str(exc), undone)) from exc
        except RingscopeError:
            _undo(spec, sink, known, rejects, entity, keep_rejects=True, quiet=True)
            raise
        except Exception as exc:
            undone = _undo(spec, sink, known, rejects, entity, keep_rejects=True, quiet=True)
            raise LoadError(_load_failed(spec.name, path, report.read, _why(exc), undone)) from exc
        except BaseException:  # interrupted: the table is taken back all the same
            _undo(spec, sink, known, rejects, entity, keep_rejects=True, quiet=True)
            raise
    rejects.close()
    report.rejects_file = rejects.written
    return report


def _load_chunk(
    spec: TableSpec,
    checked: CheckedChunk,
    sink: _Sink,
    known: KnownIds,
    rejects: _RejectsFile,
    opts: _Options,
    report: TableReport,
    entity: Any,
) -> None:
    inserted, updated, duplicates, conflicts = sink.write(spec.name, checked)
    bad = checked.rejects if conflicts.empty else pd.concat([checked.rejects, conflicts])
    rejects.write(bad)
    report.read += checked.read
    report.loaded += inserted
    report.updated += updated
    report.duplicates += checked.duplicates + duplicates
    report.rejected += len(bad)
    report.add_unknown(checked.unknown)
    if entity is not None and not checked.frame.empty:
        known.add(entity, checked.frame[spec.key[0]].to_numpy(dtype=object))
    if opts.progress:
        opts.progress(spec.name, report.read)


def _undo(
    spec: TableSpec,
    sink: _Sink,
    known: KnownIds,
    rejects: _RejectsFile,
    entity: Any,
    *,
    keep_rejects: bool = False,
    quiet: bool = False,
) -> bool:
    """Take back what this load wrote for the table, so the store is as it was.
    ``False`` when the store failed to (only with ``quiet``)."""
    if entity is not None:
        known.forget_all(entity)
    if not keep_rejects:
        rejects.reset()
    try:
        sink.rollback(spec.name)
    except StoreError:
        if not quiet:
            raise
        return False
    return True


def _load_failed(table: str, path: Path, done: int, why: str, undone: bool) -> str:
    kept = "what this load wrote of it was taken back" if undone else "the store failed too"
    return f"loading {table} from {path} failed after {done:,} rows: {why}; {kept}"


def _store_failed(table: str, path: Path, done: int, exc: StoreError, undone: bool) -> str:
    """What a store failure in the middle of a table means for the user."""
    kept = (
        "what this load wrote of it was taken back"
        if undone
        else "the batches of it already written stay"
    )
    return (
        f"the store failed while loading {table} from {path} (after {done:,} rows): {exc}. "
        f"Tables loaded before it stay and {kept}; once the store is back, run the same "
        "load again: rows already loaded are skipped, the rest are added."
    )


# --------------------------------------------------------------------------- the whole export


def _run(
    data_dir: str | Path,
    sink: _Sink,
    known: KnownIds,
    load_id: str,
    *,
    rejects_dir: Path | None,
    collect: list[Problem] | None,
    opts: _Options,
) -> LoadReport:
    folder = Path(data_dir)
    _check_data_dir(folder)
    report = LoadReport(load_id=load_id, data_dir=str(folder))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fingerprint = pool.submit(fingerprint_export, folder)
        for name in LOAD_ORDER:
            spec = TABLES[name]
            try:
                path = table_file(folder, name)
            except InputError as exc:
                report.tables[name] = TableReport(table=name, error=str(exc))
                if name in _ENTITY_OF:
                    known.forget_all(_ENTITY_OF[name])
                continue
            if path is None:
                continue
            target = rejects_dir / f"{name}.rejects.csv" if rejects_dir is not None else None
            writer = _RejectsFile(target, spec, collect)
            report.tables[name] = _load_table(spec, path, sink, known, writer, opts)
        try:
            report.fingerprint = fingerprint.result()
        except Exception as exc:  # a file that went away or became unreadable meanwhile
            for name in reversed(report.tables):
                with contextlib.suppress(StoreError):
                    sink.rollback(name)
            raise InputError(
                Problem(
                    str(folder),
                    None,
                    None,
                    f"a file of the export could not be read whole ({_why(exc)}); "
                    "what this load wrote was taken back",
                )
            ) from exc
    return report


def load_export(
    store: LoadTarget,
    data_dir: str | Path,
    *,
    rejects_dir: str | Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    earliest: datetime = DEFAULT_EARLIEST,
    latest: datetime | None = None,
) -> LoadReport:
    """Load a marketplace export into ``store``.

    Tables load in :data:`~ringscope.contract.LOAD_ORDER`, in chunks of
    ``batch_rows`` rows. Every chunk is checked; the rows that fail go to the
    table's rejects file and the others to :meth:`LoadTarget.write_batch`
    (atomic per batch). Rows whose key the store already holds with other
    values become rejects too. A table whose file cannot be read at all is
    rolled back (the store keeps what it had before) and its
    :attr:`TableReport.error` says why; the load goes on with the next tables,
    where references to the failed table's rows are then rejected as unknown.
    Loading the same export again loads nothing new: every row is a duplicate.

    Parameters
    ----------
    store
        The store to write to (or a Neo4j store's side file alone, see
        :mod:`ringscope.loaders.neo4j_import`).
    data_dir
        The export's folder (see ``docs/design.md``, "Data contract").
    rejects_dir
        Where ``<table>.rejects.csv`` files go; default
        :func:`default_rejects_dir`.
    batch_rows
        Rows per chunk and per store batch.
    progress
        Called as ``progress(table, rows_done)``; the load itself prints nothing.
    earliest, latest
        Timestamps outside ``[earliest, latest]`` are rejected; ``latest``
        defaults to now plus one day.

    Returns
    -------
    LoadReport
        Per table: rows read, loaded, rejected, skipped as duplicates, the
        rejects file and any error; the export's fingerprint. The report is
        also kept by the store (:meth:`LoadTarget.record_load`).

    Raises
    ------
    InputError
        ``data_dir`` is not a folder or holds no ``accounts`` table.
    StoreError
        The store failed; the table being loaded is rolled back first.
    """
    load_id = uuid.uuid4().hex
    folder = Path(data_dir)
    rejects = Path(rejects_dir) if rejects_dir is not None else default_rejects_dir(folder)
    opts = _Options(batch_rows, earliest, latest, progress)
    report = _run(
        folder,
        _StoreSink(store, load_id),
        KnownIds(store),
        load_id,
        rejects_dir=rejects,
        collect=None,
        opts=opts,
    )
    store.record_load(report)
    return report


def check_export(
    data_dir: str | Path,
    *,
    rejects_dir: str | Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    earliest: datetime = DEFAULT_EARLIEST,
    latest: datetime | None = None,
    problems: list[Problem] | None = None,
) -> LoadReport:
    """Check an export without writing it anywhere.

    The same reading and checking as :func:`load_export`, with references
    checked against the ids of the export alone. ``loaded`` counts the rows
    that would load.

    Parameters
    ----------
    data_dir
        The export's folder.
    rejects_dir
        When given, rejects files are written there (nothing is written otherwise).
    batch_rows, earliest, latest
        As for :func:`load_export`.
    problems
        When given, every rejected row's problem is appended to it.

    Returns
    -------
    LoadReport
        ``report.rejected == 0 and not report.failed`` means the export is clean.
    """
    opts = _Options(batch_rows, earliest, latest, None)
    return _run(
        data_dir,
        _CheckSink(),
        KnownIds(None),
        uuid.uuid4().hex,
        rejects_dir=Path(rejects_dir) if rejects_dir is not None else None,
        collect=problems,
        opts=opts,
    )


def export_problems(data_dir: str | Path, **kwargs: Any) -> list[Problem]:
    """Every problem in an export: the rejected rows, then the tables that failed.

    Keyword arguments go to :func:`check_export`.
    """
    found: list[Problem] = []
    report = check_export(data_dir, problems=found, **kwargs)
    for table in report.tables.values():
        if table.error:
            found.append(Problem(table.file or str(data_dir), None, None, table.error))
    return found


# --------------------------------------------------------------------------- one file


@dataclass(slots=True)
class TableResult:
    """One file read and checked: the normalised good rows and the rejects."""

    table: str
    frame: pd.DataFrame
    rows: np.ndarray
    rejects: pd.DataFrame
    duplicates: int = 0
    read: int = 0

    def problems(self) -> list[Problem]:
        """The rejects as :class:`~ringscope.errors.Problem` objects."""
        return rejects_to_problems(self.rejects)


def table_of(path: str | Path) -> str:
    """The table a file holds, from its name (``orders.csv.gz`` -> ``orders``)."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in TABLES:
            return name[: -len(suffix)]
    raise InputError(Problem(str(path), None, None, "file name names no table of the contract"))


def read_table(
    path: str | Path,
    spec: TableSpec | str | None = None,
    *,
    known: KnownIds | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    earliest: datetime = DEFAULT_EARLIEST,
    latest: datetime | None = None,
) -> TableResult:
    """Read and check one table file into one normalised frame, without a store.

    Parameters
    ----------
    path
        A table file (``.csv``, ``.csv.gz``, ``.parquet``, ``.jsonl``).
    spec
        Its table spec or name; default from the file name.
    known
        Ids that references may name; ``None`` skips the reference checks.
    batch_rows, earliest, latest
        As for :func:`load_export`.

    Returns
    -------
    TableResult
        ``frame`` has the table's contract columns in their normalised dtypes.

    Raises
    ------
    InputError
        The file cannot be read at all.
    """
    spec = TABLES[table_of(path)] if spec is None else spec
    spec = TABLES[spec] if isinstance(spec, str) else spec
    for exact in (False, True):
        try:
            chunks = list(
                _checked(path, spec, known, batch_rows, exact, earliest=earliest, latest=latest)
            )
        except ExactReadNeeded:
            continue
        break
    if not chunks:
        empty = check_chunk(
            RawChunk(str(path), np.zeros(0, dtype=np.int64), pa.table({})), spec, known=None
        )
        chunks = [empty]
    frame = pd.concat([c.frame for c in chunks], ignore_index=True)
    rejects = pd.concat([c.rejects for c in chunks], ignore_index=True)
    return TableResult(
        table=spec.name,
        frame=frame,
        rows=np.concatenate([c.rows for c in chunks]),
        rejects=rejects,
        duplicates=sum(c.duplicates for c in chunks),
        read=sum(c.read for c in chunks),
    )


def read_export_tables(data_dir: str | Path) -> MarketTables:
    """Every contract table of the export in ``data_dir``, read and checked without a store.

    Each table file goes through :func:`read_table` (rows that fail the checks
    are left out); a table without a file is empty.
    """
    from ringscope.algorithms.base import MarketTables, empty_table

    frames: dict[str, pd.DataFrame] = {}
    for name in LOAD_ORDER:
        path = table_file(Path(data_dir), name)
        frames[name] = read_table(path).frame if path is not None else empty_table(name)
    return MarketTables.from_frames(frames)


def _checked(
    path: str | Path,
    spec: TableSpec,
    known: KnownIds | None,
    batch_rows: int,
    exact: bool,
    *,
    earliest: datetime,
    latest: datetime | None,
) -> Iterator[CheckedChunk]:
    """Read and check ``path`` chunk by chunk. Whatever fails while doing so (a
    memory error, an Arrow error no reader foresaw, a decoding error) is an
    ``InputError`` naming the file: the file cannot be read, its table is left as
    it was."""
    try:
        for raw in iter_raw_chunks(path, spec, batch_rows=batch_rows, exact=exact):
            yield check_chunk(raw, spec, known=known, earliest=earliest, latest=latest)
    except (RingscopeError, ExactReadNeeded):
        raise
    except Exception as exc:
        raise InputError(Problem(str(path), None, None, f"cannot be read: {_why(exc)}")) from exc
