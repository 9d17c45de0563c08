"""The case file of a finding: a ZIP that stands on its own for enforcement.

Layout (fixed order, fixed entry timestamps, sorted JSON keys)::

    manifest.json   ids, creation time, versions, policy and digest, data fingerprint,
                    loads, the queries behind the evidence, SHA-256 of every other file
    SHA256SUMS      ``sha256sum -c`` format, every other file (the manifest included)
    summary.md      the statement of reasons in plain language
    summary.html    the same, escaped and self-contained
    members.csv     members and beneficiaries: role, score, account age, activity span
    evidence.csv    every evidence row of the finding, one column set, ``source`` first
    signals.json    the signals with values, thresholds, weights and whether they fired
    metrics.json    size, score, evidence counts, money totals, time span
    graph.html      the interactive cluster graph, vis-network inlined (opens from disk)
    graph.png       a static drawing of the same graph

Reading the store happens in :func:`gather` (``case``); :func:`build_files`
(``archive``) is pure, from the documents (``documents``) and the pictures of the
graph (``picture``). The same finding on the same data gives the same bytes except
the creation time, which only the manifest holds. A redacted case file is made from
the case's data redacted once, before any file is made (``ringscope.api.redact``):
every file shows tokens where the values were.
"""

from ringscope.api.export.archive import (
    FILES,
    ZIP_TIME,
    CaseFile,
    Export,
    build_files,
    export_case,
    sha256,
)
from ringscope.api.export.case import GRAPH_HOPS, GRAPH_LIMIT, CaseInputs, Redactor, gather
from ringscope.api.export.documents import MEMBER_COLUMNS, META_SOURCES
from ringscope.api.export.picture import VIS_DIR, graph_png

__all__ = [
    "FILES",
    "GRAPH_HOPS",
    "GRAPH_LIMIT",
    "MEMBER_COLUMNS",
    "META_SOURCES",
    "VIS_DIR",
    "ZIP_TIME",
    "CaseFile",
    "CaseInputs",
    "Export",
    "Redactor",
    "build_files",
    "export_case",
    "gather",
    "graph_png",
    "sha256",
]
