"""Hostile use of the command line, each case with the clear outcome it must have: a
command that exits with a message and the right code, never a crash. Hostile input
*files* (CSV, gzip, Parquet, JSON Lines) are catalogued in
tests/security/test_hostile_inputs.py.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.exports import ORDERS_HEAD, read_rejects, write_export
from typer.testing import CliRunner

from ringscope.cli import app
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.synthetic import generate

SMALL = Path(__file__).parent / "data" / "small-export"
HEAD = "account_id,roles,created_at\n"
GOOD = "a1,buyer,2024-01-01T00:00:00Z\n"


def test_export_folder_named_through_dot_dot_keeps_rejects_beside_it(tmp_path: Path) -> None:
    export = tmp_path / "exports" / "2026-11-27"
    write_export(export, {"accounts.csv": HEAD + GOOD + "a\x00,buyer,2024-01-01\n"})
    roundabout = tmp_path / "exports" / ".." / "exports" / "2026-11-27" / "." / ""
    with EmbeddedStore(tmp_path / "store.duckdb") as store:
        report = load_export(store, roundabout)
    assert report.rejected == 1
    assert report.tables["accounts"].rejects_file == str(
        tmp_path / "exports" / "2026-11-27.rejects" / "accounts.rejects.csv"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "store.duckdb"]


def test_symlinked_table_file_to_a_system_file_is_refused_by_its_columns(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "accounts.csv").symlink_to("/etc/passwd")
    with EmbeddedStore(tmp_path / "store.duckdb") as store:
        report = load_export(store, export, rejects_dir=tmp_path / "r")
        assert store.counts()["accounts"] == 0
    error = report.tables["accounts"].error
    assert error is not None and "required columns missing: account_id, roles, created_at" in error


# --------------------------------------------------------------------------- command line


@dataclass
class Cli:
    folder: Path
    store: Path
    finding: str

    def __call__(self, *args: str | Path) -> tuple[int, str]:
        result = CliRunner().invoke(app, [str(a) for a in args], terminal_width=4000)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"crash: {result.exception!r}\n{result.output}")
        assert "Traceback" not in result.output, result.output
        return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A small generated marketplace loaded and detected once, and a finding of the run
    (the hand-made small export is too small for any ring to stand out)."""
    folder = tmp_path_factory.mktemp("cli")
    store = folder / "store.duckdb"
    run = Cli(folder, store, "")
    generate(folder / "market", events=4_000, seed=7)
    assert run("load", folder / "market", "--store", store)[0] == 0
    assert run("detect", "--store", store)[0] == 0
    code, out = run("findings", "--store", store, "--out", folder / "f.json")
    assert code == 0, out
    run.finding = json.loads((folder / "f.json").read_text())["findings"][0]["id"]
    yield run


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def test_cli_load_of_a_missing_folder(cli: Cli) -> None:
    code, out = cli("load", cli.folder / "nowhere", "--store", cli.store)
    assert code == 1 and "nowhere: not a folder" in out


def test_cli_load_of_a_file_instead_of_a_folder(cli: Cli) -> None:
    code, out = cli("load", SMALL / "accounts.csv", "--store", cli.store)
    assert code == 1 and "accounts.csv: not a folder" in out


def test_cli_load_of_a_folder_without_accounts(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(ORDERS_HEAD)
    code, out = cli("load", tmp_path, "--store", cli.store)
    assert code == 1 and "required table 'accounts' missing" in out


def test_cli_load_into_an_unknown_store_scheme(cli: Cli) -> None:
    code, out = cli("load", SMALL, "--store", "http://evil.example/x")
    assert code == 1 and "unknown store URI 'http://evil.example/x'" in out


def test_cli_load_into_a_folder_as_store(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("load", SMALL, "--store", tmp_path)
    assert code == 1 and f"cannot open store {tmp_path}" in out


def test_cli_load_into_a_file_that_is_not_a_store_leaves_it_alone(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "notes.duckdb"
    other.write_text("my notes\n")
    code, out = cli("load", SMALL, "--store", other)
    assert code == 1 and "not a valid DuckDB database file" in out
    assert other.read_text() == "my notes\n"


def test_cli_load_of_a_utf16_export_is_an_error_naming_the_encoding(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "accounts.csv").write_bytes((HEAD + GOOD).encode("utf-16"))
    code, out = cli("load", tmp_path, "--store", tmp_path / "s.duckdb")
    assert code == 1 and "file is" in out, out  # the note column of the printed report
    with EmbeddedStore(tmp_path / "s.duckdb") as store:
        error = store.loads()[-1].tables["accounts"].error
    assert error is not None and "UTF-16-encoded; files must be UTF-8" in error


def test_cli_load_with_a_nul_in_an_id_exits_3_with_rejects(cli: Cli, tmp_path: Path) -> None:
    export = tmp_path / "export"
    write_export(export, {"accounts.csv": HEAD + GOOD + "a\x00,buyer,2024-01-01\n"})
    code, out = cli("load", export, "--store", tmp_path / "s.duckdb")
    assert code == 3 and "rejects:" in out
    rejects = read_rejects(tmp_path / "export.rejects" / "accounts.rejects.csv")
    assert [(r["row"], r["column"]) for r in rejects] == [("2", "account_id")]


@pytest.mark.parametrize(
    "finding", ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "%2e%2e%2fx", "x" * 100_000]
)
def test_cli_export_of_traversal_like_ids_writes_nothing(
    cli: Cli, finding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _tree(cli.folder.parent)
    code, out = cli("export", finding, "--store", cli.store)
    assert code == 1 and "no finding" in out
    assert len(out) < 3000  # an enormous id is not quoted back whole
    assert _tree(cli.folder.parent) == before and not list(tmp_path.iterdir())


def test_cli_export_to_a_folder_or_a_missing_folder(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("export", cli.finding, "--store", cli.store, "--out", tmp_path)
    assert code == 1 and f"cannot write {tmp_path}: Is a directory" in out
    code, out = cli("export", cli.finding, "--store", cli.store, "--out", tmp_path / "no" / "c.zip")
    assert code == 1 and "No such file or directory" in out


def test_cli_export_to_a_dot_dot_path_writes_there_and_the_zip_holds_plain_names(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    monkeypatch.chdir(inner)
    code, out = cli("export", cli.finding, "--store", cli.store, "--out", "../case.zip")
    assert code == 0, out
    with zipfile.ZipFile(tmp_path / "case.zip") as z:
        names = z.namelist()
        assert z.testzip() is None
    assert "SHA256SUMS" in names
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names), names


def test_cli_findings_with_an_injection_looking_run_id(cli: Cli) -> None:
    code, out = cli("findings", "--store", cli.store, "--run", "' OR 1=1 --")
    assert code == 1 and "no such run: ' OR 1=1 --" in out


def test_cli_findings_out_to_a_folder(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("findings", "--store", cli.store, "--out", tmp_path)
    assert code == 1 and f"cannot write {tmp_path}: Is a directory" in out


def test_cli_bad_usage_exits_2(cli: Cli) -> None:
    assert cli("findings", "--store", cli.store, "--format", "xml")[0] == 2
    assert cli("generate", cli.folder / "g", "--events", "-5")[0] == 2


def _laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 10):
        cur, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        text += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("laughs.yaml", _laughs(), "a: Extra inputs are not permitted"),
        ("deep.yaml", "[" * 5_000 + "]" * 5_000, "nested too deeply"),
        ("deep.toml", "a = " + "[" * 5_000 + "]" * 5_000, "nested too deeply"),
        ("binary.yaml", bytes(range(256)) * 4, "not UTF-8 text"),
    ],
    ids=["billion-laughs", "deep-yaml", "deep-toml", "binary"],
)
def test_cli_detect_with_a_hostile_policy_file(
    cli: Cli, tmp_path: Path, name: str, body: str | bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    code, out = cli("detect", "--store", cli.store, "--policy", path)
    assert code == 1 and f"policy {path}" in out and words in out, out


def test_cli_evaluate_with_a_binary_truth_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_bytes(b"\x00\xff" * 500)
    code, out = cli("evaluate", path, "--store", cli.store)
    assert code == 1 and "truth.csv" in out
