"""The file ``spark-submit`` runs: the ``ringscope`` command under a cluster's Spark.

``spark-submit [spark options] <path of this file> detect --engine spark --data URI ...``;
print the path with ``python -m ringscope.engines.spark.submit --path``.

The command is reached the way the ``ringscope`` executable reaches it: through the
``console_scripts`` entry point that the installed distribution declares
(``[project.scripts]`` in pyproject.toml), so that this engine module does not import
the command line, which sits above it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points

from ringscope.engines import EngineUnavailable

#: The name of the command's entry point.
COMMAND = "ringscope"


def command() -> Callable[[list[str]], int]:
    """The ``ringscope`` command's ``main``, from the installed distribution's entry point.

    Raises :class:`~ringscope.engines.EngineUnavailable` when ringscope is not installed
    as a distribution (a source tree on ``PYTHONPATH`` declares no entry point)."""
    for point in entry_points(group="console_scripts", name=COMMAND):
        if point.module.split(".")[0] == "ringscope":
            main: Callable[[list[str]], int] = point.load()
            return main
    raise EngineUnavailable(
        "the `ringscope` command is not registered: install ringscope "
        "(`pip install 'ringscope[spark]'`, or a packed virtualenv that has it) "
        "where spark-submit runs this file"
    )


def run(argv: list[str]) -> int:
    """``ringscope`` with ``argv``; ``--path`` prints where this file lies."""
    if argv == ["--path"]:
        print(__file__)
        return 0
    try:
        main = command()
    except EngineUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
