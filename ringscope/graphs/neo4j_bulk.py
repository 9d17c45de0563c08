"""A first load into an empty Neo4j database with ``neo4j-admin database import full``.

The Neo4j store's loads go through Cypher (batched ``UNWIND``), which costs the
server ~170 µs of CPU per relationship: a few thousand relationships per second on
two cores. Neo4j's offline importer writes the store files directly and is one to
two orders of magnitude faster, but it only creates a *new* database, with the
server stopped. So this module serves exactly one case: the first, bulk load of an
export into an empty database. Later (nightly) loads stay transactional
(``ringscope load``), and are idempotent and atomic per batch as before.

The graph is the one a transactional load of the same export gives:

1. the export is loaded into a new side file of the Neo4j store
   (:class:`~ringscope.graphs.neo4j_store.SideFile`, the same table layer the store
   writes through), with the same load record and fingerprint, by the ``load`` the
   caller gives: the loader layer's (:mod:`ringscope.loaders.neo4j_import`), which
   reads and checks the export as ``ringscope load`` does and refuses an export with
   any rejected row or unreadable table (nothing is imported, the rejects files say
   why);
2. the import CSV files are written from the side file by DuckDB, one file per
   label (accounts and identifiers carry their role or kind labels in a ``:LABEL``
   column; an identifier of a kind outside the whitelist is ``Identifier`` alone)
   and per relationship type, by the SQL that gives the store's Cypher its rows
   (:func:`~ringscope.graphs.graph_model.node_file`,
   :func:`~ringscope.graphs.graph_model.rel_file`): the same properties, property
   types and ``_load_id`` marks (timestamps as the same ISO 8601 strings, numbers as
   ``long``/``double``, ``_t0``/``_t1`` in microseconds);
3. ``neo4j-admin database import full`` builds the database from them;
4. the constraints and indexes are created when the store first connects to the
   started server (:meth:`Neo4jStore._setup_graph`, as for any store).

The side file and the database are given the same new store id (the side file's
``store_info`` table, the database's ``StoreInfo`` node, imported from its own
file), so that the store knows them for a pair (see :mod:`ringscope.graphs.neo4j_store`).

For a local Neo4j home (``tools/neo4j-local``, e.g. ``var/neo4j/local`` of
``make neo4j``) :func:`bulk_import` does all of it, the server's start included.
For a server administered elsewhere, :func:`prepare_import` writes the files and
:meth:`ImportFiles.command` gives the ``neo4j-admin`` command to run there. Both take
the export's load as a function, so that this package needs nothing of the loaders.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import duckdb
import neo4j

from ringscope.contract import TABLES
from ringscope.errors import ConfigError, StoreError
from ringscope.graphs import cypher
from ringscope.graphs.graph_model import GRAPH_TABLES, NODES, RELS, node_file, rel_file
from ringscope.graphs.neo4j_local import (
    JVM_FLAGS,
    MODULE_DIR,
    LocalNeo4j,
    _java,
    build_launcher,
    start_local_neo4j,
)
from ringscope.graphs.neo4j_store import Neo4jStore, SideFile
from ringscope.graphs.tables import q
from ringscope.model import LoadReport

#: The admin tool's entry point in the Neo4j jars (``neo4j-admin`` of a Neo4j installation).
ADMIN_TOOL: Final = "org.neo4j.cli.AdminTool"

#: Loads the export into the side file it is given and returns the load's report; raises
#: to refuse the export (the side file is then removed and nothing is imported).
LoadInto = Callable[[SideFile], LoadReport]


# --------------------------------------------------------------------------- the side file


def _remove_duckdb(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def check_side_file(columnar_path: str | Path) -> None:
    """Refuse a side file that holds any row or load: a bulk import is a first load.

    Raises
    ------
    StoreError
        When ``columnar_path`` holds data.
    """
    path = Path(columnar_path)
    if not path.exists():
        return
    with SideFile(path) as side:
        empty = side.is_empty()
    if not empty:
        raise StoreError(
            f"the columnar side file {path} already holds loaded rows: a bulk import is only "
            "for the first load of an empty store; load later exports with `ringscope load` "
            "(or point RINGSCOPE_COLUMNAR_PATH at a new file for a new database)"
        )


# --------------------------------------------------------------------------- CSV files


#: Node files: file name, the label given on the command line (``""``: a ``:LABEL``
#: column), the query over the side file. The model's nodes, and the store id the side
#: file and the database share (neo4j_store's pairing).
NODE_FILES: Final[tuple[tuple[str, str, str], ...]] = (
    *((f"{n.label.lower()}s", "" if n.extra else n.label, node_file(n)) for n in NODES.values()),
    (
        "store_info",
        cypher.STORE_INFO_LABEL,
        f'SELECT key AS "key:ID({cypher.STORE_INFO_LABEL})", store_id FROM main.store_info',
    ),
)

#: Relationship files: file name, type, query.
REL_FILES: Final[tuple[tuple[str, str, str], ...]] = tuple(
    (r.type.lower(), r.type, rel_file(r)) for r in RELS.values()
)


@dataclass(frozen=True)
class ImportFiles:
    """The CSV files of one import and how to hand them to ``neo4j-admin``.

    Attributes
    ----------
    folder
        Where the files are.
    nodes
        ``(label, path, rows)`` per node file; ``label`` empty when the file has a
        ``:LABEL`` column.
    relationships
        ``(type, path, rows)`` per relationship file.
    multiline
        Whether some value holds a line break (the importer then needs
        ``--multiline-fields=true``, which is slower).
    """

    folder: Path
    nodes: tuple[tuple[str, Path, int], ...]
    relationships: tuple[tuple[str, Path, int], ...]
    multiline: bool = False

    @property
    def node_count(self) -> int:
        return sum(n for _, _, n in self.nodes)

    @property
    def relationship_count(self) -> int:
        return sum(n for _, _, n in self.relationships)

    def admin_args(self, database: str = "neo4j", *, overwrite: bool = False) -> list[str]:
        """The arguments of ``neo4j-admin`` that import these files into ``database``."""
        # the database first: each --nodes/--relationships takes every following word
        args = ["database", "import", "full", database]
        for label, path, _ in self.nodes:
            args.append(f"--nodes={label}={path}" if label else f"--nodes={path}")
        for rel, path, _ in self.relationships:
            args.append(f"--relationships={rel}={path}")
        if self.multiline:
            args.append("--multiline-fields=true")
        if overwrite:
            args.append("--overwrite-destination=true")
        return args

    def command(self, database: str = "neo4j") -> str:
        """The shell command for a Neo4j installation (run where the files are readable,
        with the database stopped; ``--overwrite-destination=true`` replaces an existing,
        empty database)."""
        return shlex.join(["neo4j-admin", *self.admin_args(database)])


def write_import_csv(columnar_path: str | Path, out_dir: str | Path) -> ImportFiles:
    """Write the import CSV files of the graph the side file's tables imply.

    Parameters
    ----------
    columnar_path
        A side file filled by one load (see :func:`prepare_import`).
    out_dir
        The folder for the files (created; files of the same names are replaced).

    Returns
    -------
    ImportFiles
        The files, their row counts, and whether they need multi-line parsing.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(columnar_path), read_only=True)
    except duckdb.Error as e:
        raise StoreError(f"cannot open the columnar file {columnar_path}: {e}") from e
    try:
        con.execute("SET TimeZone = 'UTC'")
        nodes: list[tuple[str, Path, int]] = []
        rels: list[tuple[str, Path, int]] = []
        for name, label, sql in NODE_FILES:
            path = out / f"nodes_{name}.csv"
            nodes.append((label, path, _copy(con, sql, path)))
        for name, rel, sql in REL_FILES:
            path = out / f"rels_{name}.csv"
            rels.append((rel, path, _copy(con, sql, path)))
        multiline = _has_line_breaks(con)
    except duckdb.Error as e:
        raise StoreError(f"writing the import files to {out}: {e}") from e
    finally:
        con.close()
    return ImportFiles(out, tuple(nodes), tuple(rels), multiline)


def _copy(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> int:
    row = con.execute(f"COPY ({sql}) TO '{_sql_text(str(path))}' (FORMAT CSV, HEADER)").fetchone()
    return int(row[0]) if row else 0


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


def _has_line_breaks(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a text value that goes into the graph holds a line break."""
    checks = []
    for table in GRAPH_TABLES:
        for c in TABLES[table].columns:
            if c.type in ("str", "roles"):
                checks.append(
                    f"SELECT 1 FROM main.{table} WHERE regexp_matches({q(c.name)}, '[\\r\\n]')"
                )
    row = con.execute(f"SELECT EXISTS ({' UNION ALL '.join(checks)})").fetchone()
    return bool(row and row[0])


# --------------------------------------------------------------------------- preparing


def prepare_import(
    load: LoadInto,
    out_dir: str | Path,
    *,
    columnar_path: str | Path,
    seconds: dict[str, float] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> tuple[LoadReport, ImportFiles]:
    """Load an export into a new side file and write the import CSV files of its graph.

    Parameters
    ----------
    load
        Loads the export into the side file it is given (see :data:`LoadInto`).
    out_dir
        Where the CSV files go.
    columnar_path
        The side file to fill: it must not exist or be empty (see
        :func:`check_side_file`). The Neo4j store reads the tables from it later.
    seconds
        When given, receives the wall seconds of ``load and check`` and ``write csv``.
    on_phase
        Called with ``"write csv"`` once the export is loaded and checked.

    Returns
    -------
    (LoadReport, ImportFiles)
        The load report (also recorded in the side file) and the files.

    Raises
    ------
    StoreError
        The side file holds data already, or cannot be written.
    Exception
        What ``load`` raises to refuse the export: the side file is left as it was
        and no CSV file is written.
    """
    started = time.perf_counter()
    path = Path(columnar_path)
    check_side_file(path)
    _remove_duckdb(path)
    side = SideFile(path)
    try:
        report = load(side)
        side.new_store_id()
    except BaseException:
        side.close()
        _remove_duckdb(path)
        raise
    side.close()
    spent = {"load and check": time.perf_counter() - started}
    if on_phase is not None:
        on_phase("write csv")
    started = time.perf_counter()
    files = write_import_csv(path, out_dir)
    spent["write csv"] = time.perf_counter() - started
    if seconds is not None:
        seconds.update(spent)
    return report, files


# --------------------------------------------------------------------------- the target


def _conf_dir(home: Path) -> Path:
    """``conf/`` of a Neo4j installation, else the home (the local launcher's layout)."""
    return home / "conf" if (home / "conf" / "neo4j.conf").exists() else home


def database_dir(home: Path, database: str = "neo4j") -> Path:
    """Where the store files of ``database`` of a Neo4j home are."""
    return home / "data" / "databases" / database


def check_target(home: str | Path, database: str = "neo4j") -> bool:
    """Check that ``database`` of the Neo4j home can take a bulk import.

    Returns
    -------
    bool
        Whether the database exists (empty, never written): the import must then
        overwrite it.

    Raises
    ------
    StoreError
        The server is running (the database files are locked), or the database
        holds (or has held) nodes or relationships.

    Notes
    -----
    "Never written" is read from the store files, which a server writes at its
    checkpoints and at a clean stop: a database whose server was killed may hold
    transactions that are only in its transaction logs. Start and stop such a
    server cleanly before an import.
    """
    root = Path(home)
    if database in ("system",):
        raise StoreError("the system database cannot take an import")
    locks = [
        root / "data" / "databases" / "store_lock",
        database_dir(root, database) / "database_lock",
    ]
    for lock in locks:
        if lock.exists() and _locked(lock):
            raise StoreError(
                f"the Neo4j server of {root} is running (database {database!r} is in use, "
                f"{lock} is locked): stop it first; a bulk import writes the database files "
                "while the server is stopped"
            )
    db = database_dir(root, database)
    if not db.exists():
        return False
    stores = ("neostore.nodestore.db", "neostore.relationshipstore.db")
    written = [s for s in stores if (db / s).exists() and (db / s).stat().st_size > 0]
    if written or not all((db / s).exists() for s in stores):
        raise StoreError(
            f"database {database!r} of {root} is not empty (it holds or has held nodes or "
            f"relationships: {db}): a bulk import only creates a new database; load into it "
            "with `ringscope load`, or stop the server and move that folder (and "
            f"{root / 'data' / 'transactions' / database}) away first"
        )
    return True


def _locked(path: Path) -> bool:
    """Whether another process holds a lock on ``path`` (as a running Neo4j does)."""
    try:
        with path.open("r+b") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.lockf(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def run_import(
    home: str | Path,
    files: ImportFiles,
    database: str = "neo4j",
    *,
    overwrite: bool = False,
    heap: str = "1g",
    module: Path = MODULE_DIR,
    report_file: Path | None = None,
) -> str:
    """Run ``neo4j-admin database import full`` on the Neo4j home ``home``.

    A Neo4j installation's own ``bin/neo4j-admin`` is used when the home has one;
    otherwise the admin tool of the local Neo4j's jars (``tools/neo4j-local``),
    with ``NEO4J_HOME`` and ``NEO4J_CONF`` pointing at the home.

    Returns
    -------
    str
        The importer's output.

    Raises
    ------
    StoreError
        The importer failed; the message carries the end of its output.
    """
    root = Path(home).resolve()
    root.mkdir(parents=True, exist_ok=True)
    report = report_file or (files.folder / "import.report")
    args = [*files.admin_args(database, overwrite=overwrite)]
    args.insert(4, f"--report-file={report}")
    env = {**os.environ, "NEO4J_HOME": str(root), "NEO4J_CONF": str(_conf_dir(root))}
    admin = root / "bin" / "neo4j-admin"
    if admin.exists():
        cmd = [str(admin), *args]
        env.setdefault("HEAP_SIZE", heap)
    else:
        classpath = build_launcher(module)
        cmd = [_java(), f"-Xmx{heap}", *JVM_FLAGS, "-cp", classpath, ADMIN_TOOL, *args]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    except OSError as e:
        raise ConfigError(f"cannot run the Neo4j importer ({cmd[0]}): {e}") from e
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        if "in use" in output:
            raise StoreError(f"the Neo4j server of {root} is running: stop it first.\n{tail}")
        raise StoreError(
            f"neo4j-admin database import failed (exit code {done.returncode}):\n{tail}\n"
            f"(report: {report})"
        )
    return output


# --------------------------------------------------------------------------- all of it


@dataclass
class BulkResult:
    """What :func:`bulk_import` did.

    Attributes
    ----------
    report
        The load report (as ``ringscope load`` gives it).
    files
        The CSV files (removed after a successful import unless kept).
    seconds
        Wall seconds per phase: ``load and check``, ``write csv``, ``import``,
        ``server start``, ``schema`` (constraints and indexes created and online).
    cpu
        CPU seconds of the importer's JVM (``import``) and of the server's
        (``server (start, schema, stop)``).
    output
        What the importer printed (its stages and their times).
    graph_counts
        Nodes per label and relationships per type once the server ran (empty
        when it was not started).
    uri
        The Bolt URI the server had while it ran (empty when not started).
    """

    report: LoadReport
    files: ImportFiles
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    output: str = ""
    graph_counts: dict[str, int] = field(default_factory=dict)
    uri: str = ""


def bulk_import(
    load: LoadInto,
    home: str | Path,
    *,
    columnar_path: str | Path,
    database: str = "neo4j",
    csv_dir: str | Path | None = None,
    start: bool = True,
    heap: str = "1g",
    pagecache: str = "512m",
    conf: dict[str, str] | None = None,
    on_started: Callable[[LocalNeo4j], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> BulkResult:
    """First load of an export into an empty, stopped Neo4j database, by bulk import.

    Steps: check the target (server stopped, database new or never written) and the
    side file (empty); load and check the export into a new side file; write the CSV
    files; ``neo4j-admin database import full``; put the side file in place; then,
    with ``start`` (a local Neo4j home of ``tools/neo4j-local``), start the server,
    create the store's constraints and indexes, wait for them, and stop it.

    Parameters
    ----------
    load
        Loads the export into the side file it is given (see :data:`LoadInto`).
    home
        The Neo4j home (``var/neo4j/local`` for ``make neo4j``; a Neo4j installation's
        folder works too, with ``start=False``).
    columnar_path
        The Neo4j store's side file (``RINGSCOPE_COLUMNAR_PATH``); must be new or empty.
    database
        The database to create.
    csv_dir
        Where the CSV files go; default a folder beside the side file, removed after
        the import.
    start
        Start the local server after the import to create the schema (not for a
        Neo4j installation's home, which has ``bin/neo4j-admin``: its own server
        is started by its administrator).
    heap, pagecache, conf
        JVM heap of the importer and the server, the server's page cache and
        other settings.
    on_started
        Called with the running server (before it is stopped).
    on_phase
        Called with the name of each phase after loading and checking, as it begins
        (``write csv``, ``import``, ``server start``, ``schema``).

    Raises
    ------
    Exception
        What ``load`` raises to refuse the export (nothing imported).
    StoreError
        The server is running, the database or the side file is not empty, or the
        import failed.
    """
    root = Path(home).resolve()
    target = Path(columnar_path).resolve()
    exists = check_target(root, database)
    check_side_file(target)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    staging = target.with_name(target.name + ".import")
    keep_csv = csv_dir is not None

    def phase(name: str) -> None:
        if on_phase is not None:
            on_phase(name)

    out = Path(csv_dir) if csv_dir is not None else target.with_name(target.name + ".import-csv")
    _remove_duckdb(staging)
    started = time.perf_counter()
    try:
        report, files = prepare_import(
            load, out, columnar_path=staging, seconds=seconds, on_phase=phase
        )
        phase("import")
        started, children = time.perf_counter(), _children_cpu()
        try:
            output = run_import(root, files, database, overwrite=exists, heap=heap)
        except StoreError:
            _remove_partial_import(root, database)
            raise
        seconds["import"] = time.perf_counter() - started
        cpu["import"] = _children_cpu() - children
        _remove_duckdb(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(target)
    finally:
        _remove_duckdb(staging)
        if not keep_csv:
            shutil.rmtree(out, ignore_errors=True)
    result = BulkResult(report=report, files=files, seconds=seconds, cpu=cpu, output=output)
    if start and not (root / "bin" / "neo4j-admin").exists():  # an installation starts itself
        phase("server start")
        started, children = time.perf_counter(), _children_cpu()
        settings = {**(conf or {})}
        if database != "neo4j":
            settings.setdefault("initial.dbms.default_database", database)
        local = start_local_neo4j(
            root.parent, home=root, heap=heap, pagecache=pagecache, conf=settings
        )
        seconds["server start"] = time.perf_counter() - started
        phase("schema")
        started = time.perf_counter()
        try:
            result.uri = local.uri
            store = Neo4jStore(local.uri, database=database, columnar_path=target)
            try:
                with neo4j.GraphDatabase.driver(local.uri) as driver:
                    driver.execute_query(cypher.AWAIT_INDEXES, timeout=3600, database_=database)
                result.graph_counts = store.graph_counts()
            finally:
                store.close()
            seconds["schema"] = time.perf_counter() - started
            if on_started is not None:
                on_started(local)
        finally:
            local.stop()
        cpu["server (start, schema, stop)"] = _children_cpu() - children
    return result


def _remove_partial_import(home: Path, database: str) -> None:
    """Remove what a failed import wrote (the database was new or empty before it), unless
    a server has the home open now."""
    if _locked(home / "data" / "databases" / "store_lock"):
        return
    shutil.rmtree(database_dir(home, database), ignore_errors=True)
    shutil.rmtree(home / "data" / "transactions" / database, ignore_errors=True)


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the importer's and the server's JVMs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
