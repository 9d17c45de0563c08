"""The ``ringscope`` command: a thin shell over the library.

Exit codes: 0 ok, 1 error, 2 bad usage, 3 finished with rejected input rows.

Errors end in one ``error:`` line on stderr and exit code 1, never in a Python
traceback: ringscope's own errors say what failed and why, and any other
exception is named with its type and message. With ``RINGSCOPE_DEBUG=1`` in the
environment the traceback is printed too, before that line.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ringscope import __version__
from ringscope.errors import RingscopeError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REJECTS = 0, 1, 2, 3

app = typer.Typer(
    name="ringscope",
    help="Find collusion and abuse networks in live-shopping marketplaces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URI: a .duckdb path or neo4j://host:port. "
        "Default: $RINGSCOPE_STORE or ringscope.duckdb.",
    ),
]
RunOpt = Annotated[
    str | None, typer.Option("--run", help="Run id (default: the latest succeeded run).")
]
PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="Policy file (YAML or TOML).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")]


#: Longest error message printed whole.
_MAX_MESSAGE = 2000


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


#: Environment variable that makes errors print their traceback (read from the
#: environment directly: an error handler must not depend on settings that may be
#: what failed).
DEBUG_ENV = "RINGSCOPE_DEBUG"


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _message(e: BaseException) -> str:
    """What the user reads: ringscope's errors as they are, any other exception
    with its type (the traceback only with ``RINGSCOPE_DEBUG=1``)."""
    if _debugging():
        traceback.print_exception(e, file=sys.stderr)
    if isinstance(e, RingscopeError):
        text = str(e)
    elif isinstance(e, KeyboardInterrupt):
        text = "interrupted"
    else:
        first = (str(e).strip().splitlines() or [""])[0]
        kind = "out of memory" if isinstance(e, MemoryError) else "unexpected error"
        text = f"{kind}: {type(e).__name__}{': ' + first if first else ''}"
        if not _debugging():
            text += f" ({DEBUG_ENV}=1 shows the traceback)"
    return _shown(text)


def _shown(text: str) -> str:
    """``text`` cut to :data:`_MAX_MESSAGE` characters, escaped for the console's markup."""
    if len(text) > _MAX_MESSAGE:  # an enormous value from the input, quoted back
        text = f"{text[:_MAX_MESSAGE]}… ({len(text):,} characters in all)"
    return text.replace("[", "\\[")


@contextmanager
def _errors() -> Iterator[None]:
    """Turn any error into a clear message and exit code 1 (click's own exits and
    usage errors pass through)."""
    try:
        yield
    except (typer.Exit, typer.Abort, click.ClickException):
        raise
    except (Exception, KeyboardInterrupt) as e:
        _fail(_message(e))


def _progress(quiet: bool = False) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=quiet,
    )


# ----------------------------------------------------------------------------- library calls


@contextmanager
def _opened(store_uri: str | None) -> Iterator[Any]:
    """The store at ``store_uri`` (default: settings), closed when the block ends."""
    from ringscope.graphs import open_store

    store = open_store(store_uri)
    try:
        yield store
    finally:
        store.close()


def _load(store_uri: str | None, data_dir: Path, quiet: bool = False) -> Any:
    from ringscope.jobs.job import run_load

    with _progress(quiet) as bar:
        tasks: dict[str, Any] = {}

        def progress(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"load {table}", total=None)
            bar.update(tasks[table], completed=rows)

        report = run_load(data_dir, store_uri=store_uri, progress=progress)
        for t in tasks.values():
            bar.update(t, total=bar.tasks[t].completed)
    return report


def _print_load_report(report: Any) -> None:
    t = Table(title=f"load {report.load_id[:8]} of {report.data_dir}")
    # rows updated by a later export (refunds, identifiers seen again): shown when any
    updated = any(tr.updated for tr in report.tables.values())
    numbers = ("read", "loaded", *(("updated",) if updated else ()), "duplicates", "rejected")
    for c in ("table", "file", *numbers, "note"):
        t.add_column(c, justify="right" if c in numbers else "left")
    for name, tr in report.tables.items():
        note = tr.error or (f"rejects: {tr.rejects_file}" if tr.rejected else "")
        t.add_row(
            name,
            Path(tr.file).name if tr.file else "-",
            f"{tr.read:,}",
            f"{tr.loaded:,}",
            *((f"{tr.updated:,}",) if updated else ()),
            f"{tr.duplicates:,}",
            f"{tr.rejected:,}",
            note,
        )
    err.print(t)
    for tr in report.tables.values():  # one line per file refused, whatever the width
        if tr.error:
            err.print(f"[bold red]error:[/] {_shown(tr.error)}", highlight=False, soft_wrap=True)
    for column, counts in report.unknown_values.items():
        # values come from the data: escaped, so that none reads as markup
        shown = escape(", ".join(f"{v!r} ({n:,})" for v, n in list(counts.items())[:20]))
        more = f" and {len(counts) - 20:,} more" if len(counts) > 20 else ""
        err.print(
            f"[yellow]warning:[/] {escape(column)}: values the default policy does not map, "
            f"loaded as they are: {shown}{more}. Map them in the policy's `mapping` block "
            "(ringscope/default_policy.yaml) so that detectors count them.",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )


def _load_exit_code(report: Any) -> int:
    if report.failed:
        return EXIT_ERROR
    if report.rejected:
        return EXIT_REJECTS
    return EXIT_OK


def _detect(store_uri: str | None, policy_file: Path | None, quiet: bool = False) -> Any:
    from ringscope.jobs.job import run_job
    from ringscope.policy import load_policy

    policy = load_policy(policy_file)
    with _progress(quiet) as bar:
        task = bar.add_task("detect", total=None)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=f"detect: {step}", completed=done, total=total)

        return run_job(
            None,
            store_uri=store_uri,
            policy=policy,
            detect_progress=progress,
            what="ringscope detect",
        ).detection


def _print_queue(findings: list[Any], top: int = 10, run: Any = None) -> None:
    """The top of the queue; findings held back (dismissed, unchanged since) are left out."""
    held = set((run.summary.get("suppressed") or {}) if run is not None else ())
    findings = [f for f in findings if f.id not in held]
    t = Table(title=f"top {min(top, len(findings))} of {len(findings)} findings")
    for c in ("score", "kind", "members", "beneficiaries", "id"):
        t.add_column(c)
    for f in findings[:top]:
        t.add_row(
            f"{f.score:.2f}",
            f.kind,
            str(len(f.members)),
            ", ".join(b.account_id for b in f.beneficiaries[:3]) or "-",
            f.id,
        )
    err.print(t)


def _findings_of(store_uri: str | None, run: str | None) -> tuple[str, list[Any]]:
    """The id and findings of run ``run`` (default: the latest), the store closed after."""
    from ringscope.jobs.reports import run_findings

    with _opened(store_uri) as store:
        run_obj, found = run_findings(store, run)
    return run_obj.id, found


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as e:
            _fail(f"cannot write {out}: {e.strerror or e}")
        err.print(f"wrote {out}")


# ----------------------------------------------------------------------------- commands


@app.command()
def run(
    data_dir: Annotated[
        Path | None,
        typer.Argument(help="Export folder (default: generate the sample marketplace)."),
    ] = None,
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address the app listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the app listens on.", min=1, max=65535)] = 8000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after printing the queue.")
    ] = False,
    events: Annotated[
        int, typer.Option(help="Size of the generated sample (engagement events).")
    ] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated sample.")] = 7,
) -> None:
    """The main job: (generate,) load, detect, print the top of the queue, serve the app."""
    code = EXIT_OK
    with _errors():
        if data_dir is None:
            from ringscope.settings import get_settings

            data_dir = Path(get_settings().work_dir) / f"sample-{events}-{seed}"
            if (
                not (data_dir / "accounts.csv").exists()
                and not (data_dir / "accounts.parquet").exists()
            ):
                _generate(data_dir, events, seed)
        report = _load(store, data_dir)
        _print_load_report(report)
        code = _load_exit_code(report)
        if code == EXIT_ERROR:
            _fail("some tables could not be read; nothing detected")
        result = _detect(store, None)
        err.print(f"run [bold]{result.run.id}[/]: {len(result.findings)} findings")
        _print_queue(result.findings, run=result.run)
        if not no_serve:
            _serve(store, host, port)
    raise typer.Exit(code)


def _generate(out_dir: Path, events: int, seed: int) -> Any:
    from ringscope.loaders.synthetic import generate as gen

    with _progress() as bar:
        task = bar.add_task(f"generate {events:,} events (seed {seed})", total=None)
        report = gen(out_dir, events=events, seed=seed)
        bar.update(task, total=1, completed=1)
    return report


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the export and truth.csv into.")],
    events: Annotated[
        int | None,
        typer.Option(
            help="Engagement events of the default world (10k to 10M; default 100,000). "
            "Other worlds' size follows from their market."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 0,
    world: Annotated[
        str,
        typer.Option(
            "--world",
            help="default (the sample marketplace), random (every parameter drawn from "
            "--seed) or PATH.json (parameters, e.g. an edited world.json).",
        ),
    ] = "default",
) -> None:
    """Write a synthetic marketplace with planted abuse, its truth.csv and world.json."""
    from ringscope.loaders.synthetic import generate as gen
    from ringscope.loaders.synthetic import world_from

    with _errors():
        if events is not None and events < 1:
            _fail("--events must be at least 1", EXIT_USAGE)
        if world != "default" and events is not None:
            _fail("--events sizes the default world only; leave it out with --world", EXIT_USAGE)
        params = world_from(world, events=events, seed=seed)
        with _progress() as bar:
            task = bar.add_task(f"generate {params.events:,} events (seed {seed})", total=None)
            gen(out_dir, seed=seed, world=params)
            bar.update(task, total=1, completed=1)
        err.print(f"wrote {out_dir}")


@app.command()
def load(
    data_dir: Annotated[Path, typer.Argument(help="Export folder: one file per table.")],
    store: StoreOpt = None,
) -> None:
    """Load an export into the store; rejected rows go to a rejects file per table."""
    with _errors():
        report = _load(store, data_dir)
        _print_load_report(report)
    raise typer.Exit(_load_exit_code(report))


def _neo4j_import(
    data_dir: Path, home: Path | None, database: str, csv_only: Path | None, start: bool
) -> None:
    from ringscope.loaders import neo4j_import as neo4j_bulk
    from ringscope.settings import get_settings

    settings = get_settings()
    side = Path(settings.columnar_path)
    with _progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"check {table}", total=None)
            bar.update(tasks[table], completed=rows)

        def finish() -> None:
            for task in bar.tasks:
                bar.update(task.id, total=task.completed or 1, completed=task.completed or 1)

        def phase(name: str) -> None:
            finish()
            tasks[name] = bar.add_task(name, total=None)

        if csv_only is not None:
            report, files = neo4j_bulk.prepare_import(
                data_dir, csv_only, columnar_path=side, progress=progress, on_phase=phase
            )
        else:
            target = home or Path(settings.work_dir) / "neo4j" / "local"
            result = neo4j_bulk.bulk_import(
                data_dir,
                target,
                columnar_path=side,
                database=database,
                start=start,
                progress=progress,
                on_phase=phase,
            )
            report, files = result.report, result.files
        finish()
    _print_load_report(report)
    err.print(
        f"{files.node_count:,} nodes and {files.relationship_count:,} relationships; "
        f"tables in the side file {side}"
    )
    if csv_only is not None:
        err.print(
            f"import files in {csv_only}. On the Neo4j server, with database {database!r} "
            "stopped and new or empty (copy the files there and change their paths if "
            "needed; add --overwrite-destination=true to replace an empty database), run:"
        )
        print(files.command(database))
        err.print(
            "then start the database; the first ringscope command on it (with "
            f"RINGSCOPE_COLUMNAR_PATH={side}) creates the constraints and indexes"
        )
        return
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    err.print(f"imported into {target} ({timing})")
    if result.graph_counts:
        counts = result.graph_counts
        err.print(
            "the server held "
            + ", ".join(f"{counts[k]:,} {k}" for k in sorted(counts) if counts[k])
            + " with its constraints and indexes online, and is stopped again; start it "
            "(the local one: `make neo4j`) and use it with RINGSCOPE_STORE=neo4j://... "
            f"and RINGSCOPE_COLUMNAR_PATH={side}"
        )
    else:
        err.print(
            "start the server; the first ringscope command on it (with "
            f"RINGSCOPE_COLUMNAR_PATH={side}) creates the constraints and indexes"
        )


@app.command("neo4j-import")
def neo4j_import(
    data_dir: Annotated[Path, typer.Argument(help="Export folder: one file per table.")],
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Home folder of a stopped local Neo4j (default: <work dir>/neo4j/local, "
            "as `make neo4j` uses) or of a Neo4j installation (its bin/neo4j-admin is "
            "used; its server is not started).",
        ),
    ] = None,
    database: Annotated[str, typer.Option("--database", help="Database to create.")] = "neo4j",
    csv_only: Annotated[
        Path | None,
        typer.Option(
            "--csv-only",
            help="Only write the import CSV files to this folder and print the "
            "neo4j-admin command to run on the server.",
        ),
    ] = None,
    start: Annotated[
        bool,
        typer.Option(
            "--start/--no-start",
            help="Start the local server after the import to create the constraints "
            "and indexes (then stop it).",
        ),
    ] = True,
) -> None:
    """First load of an export into a new, empty Neo4j database with neo4j-admin import.

    Much faster than `ringscope load` on Neo4j, but only for a first load.

    The server must be stopped, the database new or empty, the side file empty.

    An export with any rejected row is refused: nothing is imported.

    Later exports load with `ringscope load`.
    """
    if csv_only is not None and home is not None:
        _fail("--csv-only writes files for another server: it takes no --home", EXIT_USAGE)
    with _errors():
        _neo4j_import(data_dir, home, database, csv_only, start)


@app.command()
def detect(
    store: StoreOpt = None,
    policy: PolicyOpt = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (the store's tables) or spark (--data).")
    ] = "local",
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master", help="Spark master URL (default: spark-submit's, else local[*])."
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Parquet export the spark engine reads (path or Hadoop URI)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the findings JSON to this file.")
    ] = None,
) -> None:
    """Run every detector once: prints the run id and a summary."""
    from ringscope.engines import ENGINES

    if engine not in ENGINES:
        _fail(f"--engine must be {' or '.join(ENGINES)}, not {engine!r}", EXIT_USAGE)
    if engine == "spark" and data is None:
        _fail("--engine spark needs --data: the Parquet export to read", EXIT_USAGE)
    if engine == "local" and (data is not None or spark_master is not None):
        _fail("--data and --spark-master go with --engine spark", EXIT_USAGE)
    with _errors():
        if engine == "spark":
            from ringscope.engines.spark.job import detect_with_spark
            from ringscope.policy import load_policy

            assert data is not None
            result = detect_with_spark(
                data, store_uri=store, policy=load_policy(policy), master=spark_master
            )
        else:
            result = _detect(store, policy)
        print(result.run.id)
        _print_queue(result.findings, run=result.run)
        err.print(json.dumps(result.run.summary, sort_keys=True))
        if out is not None:
            from ringscope.jobs.reports import findings_json

            _write(findings_json(result.run.id, result.findings), out)


@app.command()
def job(
    data_dir: Annotated[
        Path | None, typer.Argument(help="Export folder of this run (optional).")
    ] = None,
    store: StoreOpt = None,
    policy: PolicyOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress or tables; only the summary.")
    ] = False,
) -> None:
    """The periodic job: load, detect, compare with the last run, write back; one JSON line."""
    from ringscope.jobs.job import LoadFailed, run_job
    from ringscope.policy import load_policy

    code = EXIT_OK
    with _errors():
        pol = load_policy(policy)
        with _progress(quiet) as bar:
            tasks: dict[str, Any] = {}
            dtask = bar.add_task("detect", total=None, visible=False)

            def load_progress(table: str, rows: int) -> None:
                if table not in tasks:
                    tasks[table] = bar.add_task(f"load {table}", total=None)
                bar.update(tasks[table], completed=rows)

            def detect_progress(step: str, done: int, total: int) -> None:
                bar.update(
                    dtask, visible=True, description=f"detect: {step}", completed=done, total=total
                )

            try:
                result = run_job(
                    data_dir,
                    store_uri=store,
                    policy=pol,
                    load_progress=load_progress,
                    detect_progress=detect_progress,
                )
            except LoadFailed as e:
                if not quiet:
                    _print_load_report(e.report)
                raise
        if result.load is not None:
            if not quiet:
                _print_load_report(result.load)
            code = _load_exit_code(result.load)
        if not quiet:
            _print_queue(result.detection.findings, run=result.detection.run)
        print(json.dumps(result.summary(), sort_keys=True))
    raise typer.Exit(code)


@app.command()
def findings(
    store: StoreOpt = None,
    run: RunOpt = None,
    format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    out: OutOpt = None,
) -> None:
    """The findings of a run, ranked."""
    if format not in ("json", "csv"):
        _fail(f"--format must be json or csv, not {format!r}", EXIT_USAGE)
    from ringscope.jobs.reports import findings_csv, findings_json

    with _errors():
        run_id, fs = _findings_of(store, run)
        _write((findings_json if format == "json" else findings_csv)(run_id, fs), out)


@app.command()
def scores(
    store: StoreOpt = None,
    run: RunOpt = None,
    out: OutOpt = None,
) -> None:
    """CSV account_id,score,finding_id: each flagged account's highest member score."""
    from ringscope.jobs.reports import scores_csv

    with _errors():
        _, fs = _findings_of(store, run)
        _write(scores_csv(fs), out)


@app.command()
def evaluate(
    truth_csv: Annotated[Path, typer.Argument(help="truth.csv of a generated marketplace.")],
    store: StoreOpt = None,
    run: RunOpt = None,
) -> None:
    """Precision and recall per kind against planted truth (table on stderr, JSON on stdout)."""
    from ringscope.algorithms.evaluate import ROW_COLUMNS, read_truth
    from ringscope.jobs.reports import evaluate_run

    with _errors():
        truth = read_truth(truth_csv)
        with _opened(store) as st:
            evaluated, report = evaluate_run(st, truth, run)
        run_id = evaluated.id
        t = Table(title=f"evaluation of {run_id}")
        for c in ROW_COLUMNS:
            t.add_column(c, justify="right" if c == "value" else "left")
        for r in report.to_rows():
            t.add_row(*[str(x) for x in r])
        err.print(t)
        doc = {"run_id": run_id, **report.to_dict()}
        sys.stdout.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")


policy_app = typer.Typer(help="Detection policy: suggestions from investigators' decisions.")
app.add_typer(policy_app, name="policy")


@policy_app.command("suggest")
def policy_suggest(
    store: StoreOpt = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="The policy in use (default: the shipped one).")
    ] = None,
    min_decided: Annotated[
        int, typer.Option("--min-decided", min=1, help="Decided findings a detector needs.")
    ] = 5,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Threshold changes suggested by the decisions, with their effect on the latest run's
    queue; nothing is applied."""
    from ringscope.jobs.feedback import decision_metrics
    from ringscope.jobs.suggest import as_policy_yaml, suggest_from_store
    from ringscope.policy import load_policy

    if format not in ("text", "json"):
        _fail(f"--format: use text or json, not {format!r}", EXIT_USAGE)
    with _errors():
        pol = load_policy(policy)
        with _opened(store) as s:
            out = suggest_from_store(pol, s, min_decided=min_decided)
            metrics = decision_metrics(s)
        if format == "json":
            doc = {"suggestions": [x.to_dict() for x in out], "decisions": metrics}
            print(json.dumps(doc, sort_keys=True, indent=2))
            return
        t = Table(title="decided findings by detector and policy")
        for c in ("detector", "policy", "findings", "decided", "precision", "median h"):
            t.add_column(c)
        for m in metrics:
            precision, hours = m["precision"], m["median_hours_to_decision"]
            t.add_row(
                m["detector"], m["policy"], str(m["findings"]), str(m["decided"]),
                "-" if precision is None else f"{precision:.2f}",
                "-" if hours is None else f"{hours:.1f}",
            )  # fmt: skip
        err.print(t)
        if not out:
            print("no changes suggested: too few decisions, or thresholds in line with them")
            return
        for x in out:
            effect = (
                "its effect needs a run with it"
                if x.latest_removed is None
                else f"leaves out {x.latest_removed} of {x.latest_findings} findings of the "
                f"latest run ({x.latest_removed_confirmed} of them confirmed)"
            )
            print(f"{x.detector}.{x.parameter}: {x.current} -> {x.proposed}: {x.reason}; {effect}")
        print("\n# to try them, save as a policy file and pass it with --policy:")
        print(as_policy_yaml(out), end="")


def _export(
    store_uri: str | None,
    finding_id: str,
    run: str | None,
    redact: bool,
    redact_accounts: bool,
) -> Any:
    import os
    import pwd

    from ringscope.api.export import export_case
    from ringscope.settings import get_settings

    # the audit names the OS account the process runs as, not $USER, which anyone can set
    try:
        who = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without an account (a container's arbitrary uid)
        who = f"uid {os.geteuid()}"
    key = get_settings().redaction_key.get_secret_value()
    with _opened(store_uri) as store:
        return export_case(
            store,
            finding_id,
            who=who,
            via="cli",
            run_id=run,
            redact=redact,
            redact_accounts=redact_accounts,
            key=key,
        )


@app.command()
def export(
    finding_id: Annotated[str, typer.Argument(help="Finding id (or case id) to export.")],
    store: StoreOpt = None,
    run: RunOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="ZIP file to write (default: FINDING_ID.zip here)."),
    ] = None,
    redact: Annotated[
        bool,
        typer.Option(
            "--redact",
            help="Replace identifier values (device, ip, payment, phone, address) by keyed "
            "hashes; needs RINGSCOPE_REDACTION_KEY.",
        ),
    ] = False,
    redact_accounts: Annotated[
        bool,
        typer.Option("--redact-accounts", help="With --redact: replace account ids too."),
    ] = False,
) -> None:
    """Write a finding's case file: a ZIP with evidence, explanation, graph and SHA-256 sums."""
    if redact_accounts and not redact:
        _fail("--redact-accounts needs --redact", EXIT_USAGE)
    with _errors():
        result = _export(store, finding_id, run, redact, redact_accounts)
        target = out or Path(result.filename)
        try:
            target.write_bytes(result.data)
        except OSError as e:
            _fail(f"cannot write {target}: {e.strerror or e}")
        err.print(f"wrote {target} ({len(result.data):,} bytes) for run {result.run_id}")


#: A host name as RFC 1123 writes it: dot-separated labels of letters, digits and inner
#: hyphens (checked before a lookup, which would send anything else to the resolver).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port``, or a clear error: exit 2 for a host that is
    not an address or name, or not one of this machine's; exit 1 for a port in use or
    not allowed."""
    import errno
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            _fail(f"--host {host!r} is not an IP address or a host name", EXIT_USAGE)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        _fail(f"--host {host!r}: cannot be resolved ({e})", EXIT_USAGE)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        where = f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            _fail(f"cannot listen on {where}: the port is in use; choose another with --port")
        if e.errno == errno.EADDRNOTAVAIL:
            _fail(f"--host {host!r} is not an address of this machine", EXIT_USAGE)
        if e.errno == errno.EACCES:
            _fail(f"cannot listen on {where}: permission denied (ports below 1024 need it)")
        _fail(f"cannot listen on {where}: {e.strerror or e}")
    return sock


def _save_sign_in_link(link: str) -> Path | None:
    """Write the one-time sign-in link to ``<work dir>/sign-in-link.txt`` (mode 0600),
    for a terminal that wraps or cuts long lines; ``None`` when it cannot be written."""
    from ringscope.settings import get_settings

    path = Path(get_settings().work_dir) / "sign-in-link.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(link + "\n")
    except OSError:
        return None
    return path


def _serve(store: str | None, host: str, port: int) -> None:
    """Serve the app on ``host``:``port`` until interrupted.

    uvicorn runs without its proxy-header rewriting (``proxy_headers=False``): the app
    decides whom to trust on the socket's peer (``RINGSCOPE_TRUSTED_PROXIES``, see
    ``ringscope.api.deps``), which a rewritten client address would hide."""
    import uvicorn

    from ringscope.api.app import create_app
    from ringscope.api.auth import Access, User, hash_key, new_key

    access = Access.from_settings()
    sock = _listen(host, port)
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{f'[{local}]' if ':' in local else local}:{port}/"
    err.print(f"serving the investigator app on {url} (Ctrl-C to stop)")
    if access.mode == "keys" and len(access.users) == 0:
        # no users configured: a one-time admin key for this start, in the link only
        key = new_key()
        access.add_for_this_start(User("local-admin", "admin", hash_key(key)))
        link = f"{url}login#key={key}"
        saved = _save_sign_in_link(link)
        err.print(
            "no users configured (`ringscope key NAME --role ROLE` adds one); "
            "sign in as local-admin for this start with the link below"
            + (f" (also in {saved}, readable by you only)" if saved else "")
            + ":"
        )
        # on a line of its own, never wrapped: a half-copied link does not sign in
        sys.stderr.write(f"{link}\n")
        sys.stderr.flush()
    config = uvicorn.Config(
        create_app(store_uri=store, access=access),
        log_level="warning",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        _fail("the app did not start (see the messages above)")


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the investigator app and its API."""
    with _errors():
        _serve(store, host, port)


@app.command()
def key(
    name: Annotated[str, typer.Argument(help="User name (shown in decisions and the audit log).")],
    role: Annotated[str, typer.Option("--role", help="viewer, investigator or admin.")] = "viewer",
    users_file: Annotated[
        Path | None,
        typer.Option(
            "--users-file",
            help="Users file (default: $RINGSCOPE_USERS_FILE or <work dir>/users.json).",
        ),
    ] = None,
) -> None:
    """Make an API key for a user (a new one replaces the old); prints it once."""
    from ringscope.api.auth import add_user
    from ringscope.settings import get_settings

    with _errors():
        path = users_file or get_settings().users_path()
        new = add_user(path, name, role)
        err.print(f"{name} ({role}) saved in {path}; the key is shown only now:")
        print(new)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """ringscope: collusion and abuse networks in live-shopping marketplaces."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and returns its exit code.

    Whatever escapes a command (an exception outside its error handling, an
    interrupt) ends as one ``error:`` line and exit code 1, not a traceback
    (see the module docstring for ``RINGSCOPE_DEBUG``)."""
    runner: Callable[..., Any] = app
    try:
        runner(args=argv, standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_ERROR
    except (Exception, KeyboardInterrupt) as e:
        try:
            err.print(f"[bold red]error:[/] {_message(e)}", highlight=False, soft_wrap=True)
        except Exception:  # the console itself failed (a closed stderr): say it plainly
            print(f"error: {type(e).__name__}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
