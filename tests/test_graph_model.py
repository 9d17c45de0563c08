"""The graph model is declared once (``ringscope.graphs.graph_model``); its renderings agree.

No Neo4j here: the contract suite compares the Neo4j store's graph (its Cypher) and a
bulk import's with the embedded store's.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import ringscope.graphs.store
from ringscope.contract import TABLES
from ringscope.graphs import cypher, graph_model
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.neo4j_bulk import write_import_csv
from ringscope.graphs.neo4j_store import SideFile
from ringscope.loaders.pipeline import load_export
from ringscope.model import NODE_LABELS, REL_TYPES, NodeRef

SMALL = Path(__file__).resolve().parent / "data" / "small-export"


def test_the_store_protocol_shows_the_model_as_declared() -> None:
    doc = ringscope.graphs.store.__doc__ or ""
    assert graph_model.describe() in doc
    assert "USES (Account -> Identifier)" in graph_model.describe()


def test_the_model_is_the_domain_models() -> None:
    assert tuple(graph_model.NODES) == NODE_LABELS
    assert tuple(graph_model.RELS) == REL_TYPES
    assert set(graph_model.GRAPH_TABLES) == set(TABLES) - {"labels"}


def test_labels_come_only_from_the_whitelist() -> None:
    identifier, account = graph_model.NODES["Identifier"], graph_model.NODES["Account"]
    assert identifier.extra_labels == ("Device", "IP", "Payment", "Phone", "Address")
    for label in ("Imei", "Email", "Account", "Creator"):
        with pytest.raises(ValueError, match="unknown Identifier labels"):
            cypher.node_statement(identifier, (label,), create=True)
    with pytest.raises(ValueError, match="unknown Account labels"):
        cypher.node_statement(account, ("Admin",), create=False)
    assert ":Identifier:Device " in cypher.node_statement(identifier, ("Device",), create=True)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_import_files_hold_the_embedded_stores_graph(tmp_path: Path) -> None:
    """The same export, in the embedded store (its graph derived in SQL when read) and
    in a side file written out as import files: as many nodes per label and
    relationships per type, the same ids, labels only from the whitelist."""
    embedded = EmbeddedStore(tmp_path / "store.duckdb")
    with SideFile(tmp_path / "side.duckdb") as side:
        for target in (embedded, side):
            report = load_export(target, SMALL, rejects_dir=tmp_path / "rejects")
            assert report.rejected == 0
    files = write_import_csv(tmp_path / "side.duckdb", tmp_path / "csv")
    counts = embedded.graph_counts()
    by_label = {label: n for label, _, n in files.nodes}
    by_file = {path.name: n for _, path, n in files.nodes}
    assert (
        by_label["Stream"] == counts["Stream"]
        and by_file["nodes_accounts.csv"] == counts["Account"]
    )
    assert by_file["nodes_identifiers.csv"] == counts["Identifier"]
    assert {rel: n for rel, _, n in files.relationships} == {t: counts[t] for t in REL_TYPES}

    identifiers = _rows(tmp_path / "csv" / "nodes_identifiers.csv")
    stored = embedded.table("identifiers")
    assert {r["id:ID(Identifier)"] for r in identifiers} == {
        f"{k}:{v}" for k, v in zip(stored["kind"], stored["value"], strict=True)
    }
    for row in identifiers:
        labels = row[":LABEL"].split(";")
        known = dict(graph_model.IDENTIFIER_LABELS)
        assert labels == ["Identifier", *([known[row["kind"]]] if row["kind"] in known else [])]
    engaged = _rows(tmp_path / "csv" / "rels_engaged.csv")
    sub = embedded.neighbourhood(
        [NodeRef("Account", engaged[0][":START_ID(Account)"])], rel_types=["ENGAGED"]
    )
    edge = next(e for e in sub.edges if e.target.id == engaged[0][":END_ID(Stream)"])
    assert {k: str(v) for k, v in edge.props.items()} == {
        k.split(":")[0]: v for k, v in engaged[0].items() if not k.startswith(("_", ":"))
    }
    embedded.close()
