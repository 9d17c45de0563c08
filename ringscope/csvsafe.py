"""CSV for people: files that open in a spreadsheet without running anything in it.

A spreadsheet reads a cell that starts with ``=``, ``+``, ``-`` or ``@``, or with a tab
or a carriage return, as a formula ("CSV injection", OWASP): an account named
``=HYPERLINK(...)`` would run in an investigator's spreadsheet. Every CSV that
ringscope writes for people (the case file's ``members.csv`` and ``evidence.csv``,
``ringscope findings --format csv``, ``ringscope scores``, the app's CSV downloads)
writes its cells through :func:`cell`, which follows OWASP's advice: such a text gets a
leading single quote, which spreadsheets show as text and do not evaluate.

Numbers stay numbers: a cell that is an ``int`` or ``float``, or a text that is a plain
decimal number (an optional sign, digits, an optional fraction and exponent, such as
``-12.5`` or ``+3``), is written as it is, so a negative amount is still a number (a
spreadsheet reads it as one and evaluates nothing). Files that programs read back (the
loader's rejects files, the Neo4j import files) are data, not for spreadsheets, and are
written as they are.

Reference: OWASP, "CSV Injection", https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A plain decimal number: what a spreadsheet reads as a number, not a formula.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """``value`` as a CSV cell that a spreadsheet will not evaluate (see the module)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class Writer:
    """``csv.writer`` (``\\n`` line ends) whose every cell goes through :func:`cell`."""

    def __init__(self, out: TextIO) -> None:
        self._w = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([cell(c) for c in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: TextIO) -> Writer:
    """A CSV writer for people (see the module): ``csv.writer``'s ``writerow`` and
    ``writerows``, every cell through :func:`cell`."""
    return Writer(out)


def rows_text(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV file of ``header`` and ``rows`` written by :func:`writer`."""
    buf = io.StringIO()
    w = writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()
