"""The detection policy: which detectors run, their thresholds, windows and weights.

A policy is a YAML (or TOML) file that a policy analyst can read and change;
``ringscope/default_policy.yaml`` holds the documented defaults. Parameters
not given in a file keep the detector's own defaults. Unknown detectors or
parameters are errors, named with the key that is wrong.
"""

from __future__ import annotations

import hashlib
import inspect
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, ValueMap
from ringscope.contract import (
    IDENTIFIER_KIND_ALIASES,
    IDENTIFIER_KINDS,
    MAX_CODE_LENGTH,
    ORDER_STATUS_ALIASES,
    ORDER_STATUSES,
)
from ringscope.errors import ConfigError
from ringscope.model import canonical_json


class DetectorPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)


class QueuePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Link rules of the case stage (see :mod:`ringscope.algorithms.queue`).
    merge_overlap: float = Field(default=0.5, ge=0.0, le=1.0)
    merge_containment: float = Field(default=0.5, ge=0.0, le=1.0)
    min_shared: int = Field(default=2, ge=1)
    #: Detectors whose findings join cases without linking them.
    auxiliary: list[str] = Field(default_factory=lambda: ["dense_blocks", "label_propagation"])
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    #: How the app orders the queue unless asked otherwise: score, impact or priority.
    order: Literal["score", "impact", "priority"] = "score"
    #: Weight of the impact index in the priority (the score has the rest).
    impact_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    #: A finding like one an investigator dismissed is raised again only when it
    #: gained at least this share of new members (or its score rose by ``rescore``).
    dismissed_regrowth: float = Field(default=0.2, ge=0.0)
    dismissed_rescore: float = Field(default=0.1, ge=0.0, le=1.0)


def _aliases(
    value: dict[str, list[str]], canonical: tuple[str, ...], what: str
) -> dict[str, list[str]]:
    """Check and normalise one alias table: keys among ``canonical``, aliases trimmed and
    lower-case (as loads store them), each value under one key only (a canonical value
    is always its own)."""
    owner: dict[str, str] = {c: c for c in canonical}
    out: dict[str, list[str]] = {}
    for key, aliases in value.items():
        if key not in canonical:
            raise ValueError(
                f"{key!r} is not one of the {what} detectors know ({', '.join(canonical)})"
            )
        normal: list[str] = []
        for alias in aliases:
            v = str(alias).strip().lower()
            if not v or len(v) > MAX_CODE_LENGTH:
                raise ValueError(f"{key}: {alias!r} is empty or longer than {MAX_CODE_LENGTH}")
            if owner.setdefault(v, key) != key:
                raise ValueError(f"{v!r} is mapped to both {owner[v]!r} and {key!r}")
            if v not in normal:
                normal.append(v)
        out[key] = normal
    return out


class MappingPolicy(BaseModel):
    """How the order statuses and identifier kinds of the exports map to the ones the
    detectors know (see ``mapping`` in ``default_policy.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    #: canonical status -> the export's values that mean it
    order_statuses: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in ORDER_STATUS_ALIASES.items()}
    )
    #: canonical identifier kind -> the export's kinds that are one
    identifier_kinds: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in IDENTIFIER_KIND_ALIASES.items()}
    )
    #: weight of an identifier of a kind no entry maps (device and payment weigh 1.0)
    other_identifier_weight: float = Field(default=OTHER_IDENTIFIER_WEIGHT, ge=0.0, le=1.0)

    @field_validator("order_statuses")
    @classmethod
    def _statuses(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _aliases(value, ORDER_STATUSES, "order statuses")

    @field_validator("identifier_kinds")
    @classmethod
    def _kinds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _aliases(value, IDENTIFIER_KINDS, "identifier kinds")

    def value_map(self) -> ValueMap:
        """The mapping as detection applies it (:meth:`MarketTables.mapped`)."""
        return ValueMap.from_aliases(
            self.order_statuses, self.identifier_kinds, self.other_identifier_weight
        )


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = "default"
    seed: int = 0
    #: Detect on the last ``window_days`` days of activity before the latest event or
    #: order in the store; ``None``: all of it.
    window_days: float | None = Field(default=None, gt=0)
    detectors: dict[str, DetectorPolicy] = Field(default_factory=dict)
    queue: QueuePolicy = Field(default_factory=QueuePolicy)
    mapping: MappingPolicy = Field(default_factory=MappingPolicy)

    def digest(self) -> str:
        """SHA-256 of the policy's canonical JSON: which policy a run used."""
        return hashlib.sha256(canonical_json(self.model_dump()).encode()).hexdigest()


def _parse(text: str, name: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text) if name.endswith(".toml") else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(
            f"policy {name}: not valid {'TOML' if name.endswith('.toml') else 'YAML'}: {e}"
        ) from e
    except RecursionError as e:
        raise ConfigError(f"policy {name}: nested too deeply") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"policy {name}: the top level must be a mapping")
    return data


def _check_params(policy: Policy, name: str) -> None:
    from ringscope.algorithms.registry import DETECTORS

    for det, section in policy.detectors.items():
        if det not in DETECTORS:
            known = ", ".join(sorted(DETECTORS))
            raise ConfigError(f"policy {name}: unknown detector {det!r} (known: {known})")
        accepted = DETECTORS[det].parameters()
        for p in section.params:
            if p not in accepted:
                raise ConfigError(
                    f"policy {name}: detectors.{det}.params.{p} is not a parameter of {det} "
                    f"(parameters: {', '.join(sorted(accepted))})"
                )


def default_policy() -> Policy:
    """The policy shipped with ringscope."""
    text = resources.files("ringscope").joinpath("default_policy.yaml").read_text("utf-8")
    return _from_mapping(_parse(text, "default_policy.yaml"), "default_policy.yaml")


def _from_mapping(data: dict[str, Any], name: str) -> Policy:
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"policy {name}: {loc}: {first['msg']}") from e
    _check_params(policy, name)
    return policy


def load_policy(path: str | Path | None) -> Policy:
    """Read a policy file; ``None`` gives the default policy.

    A file's detector sections are laid over the defaults: a detector or a
    parameter not named in the file keeps its default. So are its ``queue`` and
    ``mapping``: a canonical status or kind the file's mapping does not name keeps
    its default aliases.
    """
    base = default_policy()
    if path is None:
        return base
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as e:
        raise ConfigError(f"policy {p}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"policy {p}: not UTF-8 text (byte {e.start})") from e
    data = _parse(text, str(p))
    merged = base.model_dump()
    for key, value in data.items():
        if key == "detectors" and isinstance(value, dict):
            for det, section in value.items():
                if not isinstance(section, dict):
                    raise ConfigError(f"policy {p}: detectors.{det} must be a mapping")
                cur = merged["detectors"].setdefault(det, {"enabled": True, "params": {}})
                for k, v in section.items():
                    if k == "params" and isinstance(v, dict):
                        cur["params"] = {**cur.get("params", {}), **v}
                    else:
                        cur[k] = v
        elif key == "queue" and isinstance(value, dict):
            merged["queue"] = {**merged["queue"], **value}
        elif key == "mapping" and isinstance(value, dict):
            # a table names the canonical values it changes; the others keep theirs
            cur = merged["mapping"]
            for k, v in value.items():
                if k in ("order_statuses", "identifier_kinds") and isinstance(v, dict):
                    cur[k] = {**cur[k], **v}
                else:
                    cur[k] = v
        else:
            merged[key] = value
    return _from_mapping(merged, str(p))


def signature_parameters(fn: Any) -> set[str]:
    """Keyword parameters a detector function accepts (its policy ``params``)."""
    return {
        name
        for name, prm in inspect.signature(fn).parameters.items()
        if prm.kind is inspect.Parameter.KEYWORD_ONLY and name != "seed"
    }
