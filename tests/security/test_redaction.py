"""Redaction as a property of the data a role may see.

A viewer (role ``viewer``) sees identifier values (devices, IPs, payment methods, phones,
addresses) only as keyed hashes, and a case file made with ``--redact`` holds none (with
``--redact-accounts``, no account id either): neither whole nor in pieces, such as the first
characters of a value that a label shortened.

The sweep. Every GET route of the app, enumerated from the app itself (so a route added
later is swept without being named here), is asked as a viewer with every value of its path
parameters that the data offers (every finding of every run, every account of every
finding, the streams, orders, products and identifiers that the viewer's own graphs show,
every run, every value of a ``Literal`` parameter), and once more for the first few of them
with each optional query parameter that changes what is shown set to another value (the
views of a cluster page, a smaller node budget, more hops, the older run, held findings,
...). A route with a required parameter that this file has no value for fails the test
instead of being skipped. Static assets (``/static``, ``/vendor``) are the same bytes for
everyone and are not swept. Every redacted case file of every finding of the latest run is
downloaded from the API, with and without ``redact_accounts``, and some are made by
``ringscope export --redact`` as well (the same files as the API's), and every file inside
is swept
(``graph.png`` is checked to hold pixels and no text).

What a sweep looks for in an answer (the rule):

- every raw value whole (values shorter than ``LONG_PIECE`` characters as a word of the
  answer: not inside a longer run of letters, digits and ``.+@-_``);
- every piece of ``PIECE`` (6) characters of a value, unless the piece reads as a number
  or a word: only hex digits (``0-9a-f``), decimal digits around at most one point, or
  only letters. Such pieces turn up by chance in what the app rightly shows: amounts,
  scores and coordinates, random ids of orders, streams and products, hashes, and words
  (``creator`` in the account name ``xss-creator``). So ``58.254.255.1`` of the IP
  ``58.254.255.185`` is caught by its piece ``8.254.``, and ``payment:pm-0184…`` by
  ``pm-018``;
- every piece of ``LONG_PIECE`` (12) characters, whatever it holds: twelve hex digits
  match by chance about once in 3 x 10^14 places.

Before the sweep an answer is read as its data reads: an HTML page's tags left out but for
their attributes' values (data in a page is escaped), JSON's ``\\uXXXX`` escapes, HTML's
character references and URL percent-escapes decoded; keyed-hash tokens (``ip-3fa4…``,
whole or shortened by a label), ids made of a lower-case prefix and 16 hex digits (finding
ids), run ids and 64-digit hex digests are blanked (they are random hex, which matches pieces of hex
ids by chance); and the script and
style sheet of vis-network, which a case file's ``graph.html`` inlines (a library, not
data), are left out.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import subprocess
import sys
import typing
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fastapi.routing import APIRoute
from helpers.app import auth
from starlette.routing import BaseRoute, Mount, Route

from ringscope.api.export import FILES
from ringscope.contract import IDENTIFIER_KINDS

from .helpers import REDACTION_KEY, ServedInProcess

pytestmark = pytest.mark.timeout(900)

PIECE = 6
LONG_PIECE = 12
_COMMON = re.compile(r"[0-9a-f]*|[0-9]*\.?[0-9]*|[A-Za-z]*")
#: Keyed-hash tokens, whole or shortened by a label (``ip:ip-3fa4b2c1d…``), other ids of a
#: lower-case prefix and 16 hex digits (finding and case ids), and run ids (a time and 6
#: random hex digits).
_PREFIXES = "|".join((*IDENTIFIER_KINDS, "acct"))
_TOKEN = re.compile(
    rf"(?<![0-9A-Za-z])(?:[a-z]{{2,16}}-[0-9a-f]{{16}}|(?:{_PREFIXES})-[0-9a-f]{{1,15}}"
    r"|run-\d{8}T\d{6}Z-[0-9a-f]{6})(?![0-9a-f])"
)
_DIGEST = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_LIBRARY = re.compile(
    r"<script(?![^>]*application/json)[^>]*>.*?</script>|<style[^>]*>.*?</style>", re.S
)
_TAG = re.compile(r"<[^<>]*>")
_ATTRIBUTE = re.compile(r"=\"([^\"]*)\"")
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")

# ----------------------------------------------------------------------------- the sweep


def readable(text: str, *, page: bool = False) -> str:
    """``text`` as the data in it reads (see the module docstring); ``page``: an HTML page,
    whose tags are markup but for their attributes' values (data in a page is escaped)."""
    if page:
        text = _LIBRARY.sub(" ", text)
        text = _TAG.sub(lambda m: f" {' '.join(_ATTRIBUTE.findall(m.group(0)))} ", text)
    decoded = html.unescape(_JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
    both = f"{text}\0{decoded}\0{unquote(decoded)}"
    return _DIGEST.sub(" ", _TOKEN.sub(" ", both))


#: A word of an answer: what an identifier or account id is whole in a text.
_WORD = re.compile(r"[\w+@][\w.+@-]*")


@dataclass
class Secrets:
    """Raw values, and the pieces of them that a sweep looks for."""

    pieces: dict[int, dict[str, str]]  # length -> piece -> the raw value it is from
    words: dict[str, str]  # values shorter than LONG_PIECE, looked for as words

    @staticmethod
    def of(values: Iterable[str]) -> Secrets:
        s = Secrets({PIECE: {}, LONG_PIECE: {}}, {})
        for v in values:
            if 0 < len(v) < LONG_PIECE:
                s.words[v] = v
            for i in range(len(v) - PIECE + 1):
                piece = v[i : i + PIECE]
                if not _COMMON.fullmatch(piece):
                    s.pieces[PIECE][piece] = v
            for i in range(len(v) - LONG_PIECE + 1):
                s.pieces[LONG_PIECE][v[i : i + LONG_PIECE]] = v
        return s

    def found(self, text: str, *, page: bool = False) -> list[tuple[str, str]]:
        """(piece, raw value) for every piece of a raw value in ``text`` (``page``: HTML)."""
        t = readable(text, page=page)
        hits = []
        for n, pieces in self.pieces.items():
            if len(t) >= n and pieces:
                seen = {t[i : i + n] for i in range(len(t) - n + 1)}
                hits += [(p, pieces[p]) for p in seen & pieces.keys()]
        words = {w for m in _WORD.findall(t) for w in (m, m.rstrip(".-"))}
        hits += [(w, self.words[w]) for w in words & self.words.keys()]
        return sorted(hits)


@dataclass
class Leaks:
    """What a sweep found, by where."""

    found: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    swept: int = 0

    def check(self, where: str, text: str, secrets: Secrets, *, page: bool = False) -> None:
        self.swept += 1
        hits = secrets.found(text, page=page)
        if hits:
            self.found[where] = hits

    def report(self) -> str:
        lines = [f"{len(self.found)} of {self.swept} answers show raw values:"]
        for where, hits in sorted(self.found.items())[:25]:
            lines.append(f"  {where}: {hits[:4]}{' ...' if len(hits) > 4 else ''}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the routes


def get_routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """Every GET route of an app (through routers included into it)."""
    for r in routes:
        inner = getattr(r, "original_router", None)  # a router included as a whole
        if inner is not None:
            yield from get_routes(inner.routes)
        elif isinstance(r, Mount):
            continue  # static assets: the same bytes for every caller
        elif isinstance(r, Route) and "GET" in (r.methods or ()):
            yield r


def _params(d: Any, kind: str) -> list[Any]:
    out = list(getattr(d, kind))
    for sub in d.dependencies:
        out += _params(sub, kind)
    return out


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    required: bool


def route_params(r: Route) -> tuple[list[Param], list[Param]]:
    """The route's path and query parameters (a plain route: its path's parameters)."""
    if not isinstance(r, APIRoute):
        return [Param(n, str, True) for n in r.param_convertors], []

    def of(kind: str) -> list[Param]:
        return [
            Param(p.alias, p.field_info.annotation, p.field_info.is_required())
            for p in _params(r.dependant, kind)
        ]

    return of("path_params"), of("query_params")


def _literal_values(annotation: Any) -> list[str]:
    """The values of a ``Literal`` (or of an optional one), else none."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if len(args) == 1:
        return _literal_values(args[0])
    return []


@dataclass
class Samples:
    """Values for the routes' parameters, from what the data holds and what a viewer sees."""

    path: dict[str, list[str]]
    required: dict[str, list[dict[str, str]]]  # required query parameters, filled together
    variants: dict[str, list[str]]  # other values of optional query parameters


def requests_of(r: Route, samples: Samples, first: int = 3) -> Iterator[str]:
    """The URLs a sweep asks of route ``r``."""
    path_params, query_params = route_params(r)
    values: list[dict[str, str]] = [{}]
    for p in path_params:
        options = _literal_values(p.annotation) or samples.path.get(p.name)
        assert options, f"no value for path parameter {p.name!r} of {r.path}: add one"
        values = [{**v, p.name: o} for v in values for o in options]
    required = [p.name for p in query_params if p.required]
    fills: list[dict[str, str]] = [{}]
    if required:
        key = ",".join(sorted(required))
        assert key in samples.required, f"no value for query parameters {key} of {r.path}"
        fills = samples.required[key]
    for n, v in enumerate(values):
        base = _PATH_PARAM.sub(partial(_filled, v), r.path)
        for fill in fills:
            yield base + (
                "?" + "&".join(f"{k}={quote(x)}" for k, x in fill.items()) if fill else ""
            )
        if n >= first:
            continue
        for p in query_params:
            if p.required:
                continue
            for option in _literal_values(p.annotation) or samples.variants.get(p.name, []):
                q = {**fills[0], p.name: option}
                yield base + "?" + "&".join(f"{k}={quote(x)}" for k, x in q.items())


def _filled(values: dict[str, str], m: re.Match[str]) -> str:
    return quote(values[m.group(1)], safe=":")


def viewer_samples(served: ServedInProcess) -> Samples:
    """Samples from the data and from the viewer's own graphs (the ids a viewer can see)."""
    c = served.client
    latest, older = served.runs[0], served.runs[-1]
    findings = [f for fs in served.findings.values() for f in fs]
    accounts = sorted(
        {m.account_id for f in findings for m in f.members}
        | {b.account_id for f in findings for b in f.beneficiaries}
    )
    refs = [f"Account:{a}" for a in accounts]
    for f in served.findings[latest]:
        g = c.get(f"/api/findings/{f.id}/graph", headers=auth("test-viewer")).json()
        per_label: dict[str, int] = {}
        for n in g["nodes"]:
            if n["label"] != "Account" or n["ref"] not in refs:
                per_label[n["label"]] = per_label.get(n["label"], 0) + 1
                if per_label[n["label"]] <= 3 and n["ref"] not in refs:
                    refs.append(n["ref"])
    identity = [f for f in served.findings[latest] if f.kind == "identity_cluster"]
    pairs = [
        {"a": f"Account:{f.members[0].account_id}", "b": f"Account:{f.members[-1].account_id}"}
        for f in identity
    ]
    return Samples(
        path={
            "finding_id": [f.id for f in findings],
            "ref": refs,
            "run_id": served.runs,
        },
        # search: the start of an account id and of a finding id (a viewer's own typing
        # is echoed back; identifier values are not searched for viewers)
        required={
            "a,b": pairs,
            "q": [{"q": accounts[0][:4]}, {"q": findings[0].id[:6]}],
        },
        variants={
            "run": [older],
            "kind": sorted({f.kind for f in findings}),
            "beneficiary": [next(b.account_id for f in findings for b in f.beneficiaries)],
            "budget": ["10"],
            "hops": ["0", "2"],
            "held": ["true"],
            "rel": ["USES"],
            "limit": ["1000"],
        },
    )


def sweep_viewer(
    served: ServedInProcess, user: str, secrets: Secrets
) -> tuple[Leaks, dict[str, int]]:
    """Ask every GET route as ``user``; the sweep and the answers' statuses by route."""
    leaks, statuses = Leaks(), {}
    samples = viewer_samples(served)
    headers = {**auth(user), "Accept": "text/html,application/json"}
    for r in get_routes(served.client.app.routes):  # type: ignore[attr-defined]
        codes = set()
        for url in requests_of(r, samples):
            answer = served.client.get(url, headers=headers)
            codes.add(answer.status_code)
            assert answer.status_code < 500, (url, answer.text[:500])
            page = answer.headers.get("content-type", "").startswith("text/html")
            leaks.check(url, answer.text, secrets, page=page)
        statuses[r.path] = min(codes)
    return leaks, statuses


# ----------------------------------------------------------------------------- tests


def test_a_viewer_sees_no_piece_of_an_identifier_value_anywhere(served: ServedInProcess) -> None:
    secrets = Secrets.of(served.identifier_values)
    leaks, statuses = sweep_viewer(served, "test-viewer", secrets)
    # the sweep reached what a viewer may read, and was refused the rest
    for path in (
        "/",
        "/findings/{finding_id}",
        "/entities/{ref:path}",
        "/ecosystem",
        "/api/findings",
        "/api/findings/{finding_id}",
        "/api/findings/{finding_id}/graph",
        "/api/findings/{finding_id}/decisions",
        "/api/entities/{ref:path}",
        "/api/entities/{ref:path}/neighbourhood",
        "/api/path",
        "/api/runs/{run_id}",
        "/api/ecosystem/{table}.csv",
    ):
        assert statuses.get(path) == 200, (path, statuses.get(path))
    assert statuses["/api/findings/{finding_id}/export"] == 403
    assert statuses["/api/audit"] == 403
    assert leaks.swept > 500
    assert not leaks.found, leaks.report()


def test_investigators_and_admins_see_identifier_values(served: ServedInProcess) -> None:
    """The sweep finds what it looks for: an investigator's and an admin's answers hold
    the raw values (unredacted), in graph labels and tooltips too."""
    secrets = Secrets.of(served.identifier_values)
    f = next(f for f in served.findings[served.runs[0]] if f.evidence.get("identifiers"))
    value = str(f.evidence["identifiers"][0]["value"])
    for user in ("test-investigator", "test-admin"):
        for url in (f"/findings/{f.id}", f"/api/findings/{f.id}/graph", f"/api/findings/{f.id}"):
            answer = served.client.get(url, headers=auth(user))
            assert answer.status_code == 200
            assert value in answer.text, (user, url)
            assert secrets.found(answer.text, page=url.startswith("/findings")), (user, url)
    viewer = served.client.get(f"/findings/{f.id}", headers=auth("test-viewer")).text
    assert value not in viewer


def test_the_decision_note_is_redacted_for_a_viewer(served: ServedInProcess) -> None:
    note_values = []
    f = next(
        x for fs in served.findings.values() for x in fs if (x.case_id or x.id) == served.noted_case
    )
    note_values = [str(r["value"]) for r in f.evidence["identifiers"][:3]]
    shown = served.client.get(f"/api/findings/{f.id}/decisions", headers=auth("test-viewer"))
    notes = [d["note"] for d in shown.json() if d["note"].startswith("same card")]
    assert notes and not any(v in n for v in note_values for n in notes)
    assert re.search(r"\b(payment|device|ip|phone|address)-[0-9a-f]{16}\b", notes[0])
    full = served.client.get(f"/api/findings/{f.id}/decisions", headers=auth("test-investigator"))
    assert any(v in d["note"] for d in full.json() for v in note_values)


# ----------------------------------------------------------------------------- case files


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def png_chunks(data: bytes) -> list[bytes]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, at = [], 8
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        chunks.append(data[at + 4 : at + 8])
        at += size + 12
    return chunks


def sweep_case_file(leaks: Leaks, where: str, files: dict[str, bytes], secrets: Secrets) -> None:
    assert list(files) == list(FILES), where
    for name, data in files.items():
        if name == "graph.png":
            assert set(png_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}, where  # no text
            continue
        page = name.endswith(".html")
        leaks.check(f"{where}/{name}", data.decode("utf-8"), secrets, page=page)


def cli_export(
    served: ServedInProcess, finding_id: str, out: Path, *extra: str
) -> dict[str, bytes]:
    env = {
        **os.environ,
        "RINGSCOPE_REDACTION_KEY": REDACTION_KEY,
        "RINGSCOPE_WORK_DIR": str(out.parent / "var"),
    }
    env.pop("RINGSCOPE_STORE", None)
    args = ["export", finding_id, "--store", str(served.cli_store), "--out", str(out)]
    p = subprocess.run(
        [sys.executable, "-m", "ringscope.cli", *args, "--redact", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return unzip(out.read_bytes())


@pytest.mark.parametrize("accounts", [False, True], ids=["identifiers", "accounts"])
def test_redacted_case_files_hold_no_piece_of_a_raw_value(
    served: ServedInProcess, tmp_path: Path, accounts: bool
) -> None:
    raw = set(served.identifier_values) | (set(served.account_ids) if accounts else set())
    secrets = Secrets.of(raw)
    leaks = Leaks()
    latest = served.findings[served.runs[0]]
    params = {"redact": "true", **({"redact_accounts": "true"} if accounts else {})}
    api: dict[str, dict[str, bytes]] = {}
    for f in latest:
        r = served.client.get(
            f"/api/findings/{f.id}/export", params=params, headers=auth("test-investigator")
        )
        assert r.status_code == 200, r.text
        api[f.id] = unzip(r.content)
        sweep_case_file(leaks, f"api {f.id}", api[f.id], secrets)
    # the command line (for one finding of each kind with account ids; for the top finding
    # with identifiers): the same files as the API's
    by_kind = {f.kind: f for f in reversed(latest)}
    with_identifiers = next(f for f in latest if f.evidence.get("identifiers"))
    extra = ("--redact-accounts",) if accounts else ()
    for f in by_kind.values() if accounts else [with_identifiers]:
        files = cli_export(served, f.id, tmp_path / f"{f.id}.zip", *extra)
        sweep_case_file(leaks, f"cli {f.id}", files, secrets)
        for name in FILES:
            if name not in ("manifest.json", "SHA256SUMS"):
                assert files[name] == api[f.id][name], (f.id, name)
    assert not leaks.found, leaks.report()
    # redacted, not emptied: the tokens are where the values were
    graph = api[next(f.id for f in latest if f.evidence.get("identifiers"))]["graph.html"]
    assert re.search(rb"(payment|device|ip|phone|address)-[0-9a-f]{16}", graph)
    if accounts:
        assert re.search(rb"acct-[0-9a-f]{16}", graph)
        manifest = json.loads(api[latest[0].id]["manifest.json"])
        assert manifest["redaction"]["accounts"] is True
