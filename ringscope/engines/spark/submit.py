"""The file ``spark-submit`` runs: the ``ringscope`` command under a cluster's Spark.

``spark-submit [spark options] <path of this file> detect --engine spark --data URI ...``;
print the path with ``python -m ringscope.engines.spark.submit --path``.
"""

from __future__ import annotations

import sys


def run(argv: list[str]) -> int:
    """``ringscope`` with ``argv``; ``--path`` prints where this file lies."""
    if argv == ["--path"]:
        print(__file__)
        return 0
    from ringscope.cli import main

    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
