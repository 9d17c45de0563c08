"""The policy file: defaults, overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringscope.algorithms.registry import DETECTORS
from ringscope.errors import ConfigError
from ringscope.policy import default_policy, load_policy


def test_default_policy_lists_every_detector_and_parameter_with_its_default() -> None:
    p = default_policy()
    assert set(p.detectors) == set(DETECTORS)
    for name, spec in DETECTORS.items():
        params = p.detectors[name].params
        defaults = spec.parameters()
        assert set(params) == set(defaults), name
        for k, v in defaults.items():
            expected = list(v) if isinstance(v, tuple) else v
            assert params[k] == expected, f"{name}.{k}: file {params[k]!r}, code {v!r}"


def test_a_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "version: strict\n"
        "detectors:\n"
        "  lockstep:\n"
        "    params: {min_group: 12}\n"
        "  money_cycles: {enabled: false}\n"
        "queue: {min_score: 0.4}\n"
    )
    p = load_policy(f)
    base = default_policy()
    assert p.version == "strict"
    assert p.detectors["lockstep"].params["min_group"] == 12
    assert (
        p.detectors["lockstep"].params["window_s"] == base.detectors["lockstep"].params["window_s"]
    )
    assert p.detectors["money_cycles"].enabled is False
    assert p.queue.min_score == 0.4
    assert p.queue.merge_overlap == base.queue.merge_overlap
    assert p.digest() != base.digest()


def test_toml_policy(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[detectors.shared_identifiers.params]\nmin_shared = 3\n")
    assert load_policy(f).detectors["shared_identifiers"].params["min_shared"] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("detectors:\n  hugs: {enabled: true}\n", "unknown detector 'hugs'"),
        (
            "detectors:\n  lockstep:\n    params: {windw_s: 3}\n",
            "detectors.lockstep.params.windw_s",
        ),
        ("queue: {min_score: 7}\n", "queue.min_score"),
        ("detectors: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("colour: blue\n", "colour"),
    ],
)
def test_bad_policy_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_policy(f)
    assert message in str(e.value)
    assert str(f) in str(e.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_digest_does_not_depend_on_key_order() -> None:
    from ringscope.policy import Policy

    p = default_policy()
    shuffled = dict(reversed(list(p.model_dump().items())))
    assert Policy.model_validate(shuffled).digest() == p.digest()
