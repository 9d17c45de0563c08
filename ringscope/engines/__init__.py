"""Detection engines: where the detectors' heavy steps run.

``local`` (the default) runs every detector in this process on pandas, numpy and
igraph (``ringscope.jobs.detect``). ``spark`` runs the heavy steps on Apache
Spark (``ringscope.engines.spark``), for marketplaces past one machine; it needs
the ``spark`` extra (``pip install 'ringscope[spark]'``).
"""

from __future__ import annotations

from ringscope.errors import ConfigError

#: The engines ``ringscope detect --engine`` takes.
ENGINES: tuple[str, ...] = ("local", "spark")


class EngineUnavailable(ConfigError):
    """The chosen engine cannot run here (its packages are not installed)."""
