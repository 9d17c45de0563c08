"""What a viewer sees: identifier values (devices, IPs, payment methods, phones,
addresses) replaced by keyed hashes, the same ones a redacted case file uses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from ringscope.api.export import Redactor
from ringscope.model import Finding, Node

M = TypeVar("M", bound=BaseModel)


def for_viewer(
    key: str, *, findings: Iterable[Finding] = (), nodes: Iterable[Node] = ()
) -> Callable[[Any], Any]:
    """A function that redacts, in any JSON-like value, every identifier value that the
    findings' evidence and the identifier nodes carry."""
    red = Redactor.from_key(key)
    for f in findings:
        for row in f.evidence.get("identifiers", []):
            if isinstance(row, dict) and row.get("value") is not None:
                red.add(str(row.get("kind") or "id"), str(row["value"]))
    for n in nodes:
        if n.ref.label == "Identifier":
            kind, _, value = n.ref.id.partition(":")
            red.add(kind, value)
            if isinstance(n.props.get("value"), str):
                red.add(kind, n.props["value"])
    return red.compile()


def model(out: M, red: Callable[[Any], Any]) -> M:
    """``out`` with every identifier value redacted."""
    return type(out).model_validate(red(out.model_dump(mode="json")))


def finding(f: Finding, red: Callable[[Any], Any]) -> Finding:
    return Finding.from_dict(red(f.to_dict()))
