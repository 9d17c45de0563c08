"""Policy parameters of a Spark detector: the local detector's, with its defaults."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def keyword_defaults(fn: Callable[..., Any], *, inputs: tuple[str, ...]) -> dict[str, Any]:
    """The keyword-only parameters of local detector ``fn`` and their defaults.

    ``inputs`` names the keyword-only parameters that are tables or run
    context (``orders``, ``as_of``, ``seed``), not policy parameters.
    """
    return {
        name: prm.default
        for name, prm in inspect.signature(fn).parameters.items()
        if prm.kind is inspect.Parameter.KEYWORD_ONLY and name not in inputs
    }


def with_defaults(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` over ``defaults``; a name the local detector does not take is a TypeError."""
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
    return {**defaults, **params}
