"""Settings, read from the environment (prefix ``RINGSCOPE_``) through :func:`get_settings`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RINGSCOPE_", extra="ignore")

    store: str = Field(default="ringscope.duckdb", description="store URI or path")
    neo4j_user: str = Field(
        default="neo4j", validation_alias=AliasChoices("NEO4J_USER", "RINGSCOPE_NEO4J_USER")
    )
    neo4j_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("NEO4J_PASSWORD", "RINGSCOPE_NEO4J_PASSWORD"),
    )
    neo4j_database: str = Field(
        default="neo4j",
        validation_alias=AliasChoices("NEO4J_DATABASE", "RINGSCOPE_NEO4J_DATABASE"),
    )
    #: Where a Neo4j store keeps the raw events (columnar side file), per docs/design.md.
    columnar_path: str = Field(default="ringscope-events.duckdb")
    work_dir: str = Field(default="var", description="rejects, exports, local Neo4j data")
    #: Detectors run at once in a detection run; 0: two when two cores are available.
    #: More threads use more memory at once (see benchmarks/README.md, "Detection").
    detect_threads: int = Field(default=0, ge=0)
    #: Seconds a job (``job``, ``load``, ``detect``) waits for the process that holds the
    #: embedded store's file to step aside (the investigator app does) before it fails.
    store_wait_s: float = Field(default=60.0, ge=0)
    #: Key of the keyed hashes that replace personal identifiers in redacted exports.
    redaction_key: SecretStr = Field(default=SecretStr(""))

    # access to the investigator app (see the README's "Security" section)
    #: ``keys``: API keys (``Authorization: Bearer`` or the login cookie);
    #: ``proxy``: a trusted reverse proxy names the user in ``proxy_user_header``.
    auth: Literal["keys", "proxy"] = "keys"
    #: Users, roles and key hashes (JSON); empty means ``<work_dir>/users.json``.
    users_file: str = ""
    proxy_user_header: str = "X-Forwarded-User"
    #: Addresses or networks (``10.0.0.0/8``) the reverse proxy connects from, as the TCP
    #: connection shows them. Only from these are ``proxy_user_header`` (proxy mode) and
    #: ``X-Forwarded-For`` (the client's address, both modes) read; from elsewhere both are
    #: ignored, and a proxy-mode request is refused.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: Refused requests (401, 403) written to the audit log in full per client address and
    #: period; the rest are counted, in one ``denied_summary`` entry per client and period.
    audit_refusals_per_client: int = Field(default=10, ge=1)
    #: Refused requests written in full per period, all clients together.
    audit_refusals_per_period: int = Field(default=100, ge=1)
    #: The period of those limits, in seconds.
    audit_refusal_period_s: float = Field(default=60.0, gt=0)

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_alias(cls, value: object) -> object:
        """``key`` means ``keys``."""
        text = str(value).strip().lower() if isinstance(value, str) else value
        return "keys" if text == "key" else text

    def users_path(self) -> Path:
        return Path(self.users_file) if self.users_file else Path(self.work_dir) / "users.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
