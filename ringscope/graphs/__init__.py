"""The graph model and the stores that hold it."""

from __future__ import annotations

from ringscope.errors import ConfigError
from ringscope.graphs.store import GraphStore
from ringscope.settings import Settings, get_settings

NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


def check_store_uri(uri: str) -> str:
    """``uri`` if it names a store ringscope can open (a path, ``duckdb://PATH`` or a
    Neo4j URI), else a :class:`ConfigError`; nothing is created."""
    if not uri:
        raise ConfigError("empty store URI: use a .duckdb path or neo4j://host:port")
    if "://" in uri and not uri.startswith(("duckdb://", *NEO4J_SCHEMES)):
        raise ConfigError(f"unknown store URI {uri!r}: use a .duckdb path or neo4j://host:port")
    return uri


def open_store(uri: str | None = None, *, settings: Settings | None = None) -> GraphStore:
    """Open the store named by ``uri`` (default: ``RINGSCOPE_STORE``, else ``ringscope.duckdb``).

    ``neo4j://`` and ``bolt://`` URIs open the Neo4j store (credentials from
    ``NEO4J_USER``/``NEO4J_PASSWORD``); a path (optionally ``duckdb://PATH``)
    opens the embedded store.
    """
    settings = settings or get_settings()
    uri = check_store_uri(uri or settings.store)
    if uri.startswith(NEO4J_SCHEMES):
        from ringscope.graphs.neo4j_store import Neo4jStore

        return Neo4jStore.connect(uri, settings=settings)
    from ringscope.graphs.embedded import EmbeddedStore

    return EmbeddedStore(uri.removeprefix("duckdb://"))


__all__ = ["GraphStore", "check_store_uri", "open_store"]
