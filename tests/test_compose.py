"""docker-compose.yml: pinned images, and environment names that ringscope reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from ringscope.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _settings_env_names() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(c).upper() for c in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(prefix + field_name.upper())
    return names


def test_images_are_pinned() -> None:
    services = _compose()["services"]
    assert {"neo4j", "ringscope"} <= set(services)
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, name
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} is not pinned"
    neo4j_image = services["neo4j"]["image"]
    assert neo4j_image.startswith("neo4j:5.26.") and neo4j_image.endswith("-community")


def test_api_waits_for_a_healthy_neo4j() -> None:
    services = _compose()["services"]
    assert services["neo4j"]["healthcheck"]["test"]
    assert services["ringscope"]["depends_on"]["neo4j"]["condition"] == "service_healthy"
    assert "NEO4J_AUTH" in services["neo4j"]["environment"]
    assert any(not str(v).startswith(("./", "/")) for v in services["neo4j"]["volumes"])


def test_api_environment_matches_settings() -> None:
    env = _compose()["services"]["ringscope"]["environment"]
    known = _settings_env_names()
    unknown = sorted(set(env) - known)
    assert not unknown, f"environment names that Settings does not read: {unknown}"
    assert env["RINGSCOPE_STORE"].startswith("neo4j://neo4j:7687")
    assert {"NEO4J_USER", "NEO4J_PASSWORD"} <= set(env)


def test_dockerfile_serves_the_api() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert '"serve", "--host", "0.0.0.0", "--port", "8000"' in text
