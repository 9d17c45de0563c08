"""Runs ``ringscope`` commands, each in a process of its own, and reports each one's
exit code and peak memory: a helper process for tests/security (not a test module).

Started once, it imports ringscope and the libraries a load uses, then reads one
JSON request per line on stdin (``argv``; ``env``, where an empty value unsets a
variable; ``cwd``; the ``stdout`` and ``stderr`` files) and forks a child per
request that runs :func:`ringscope.cli.main` as the ``ringscope`` command does.
The child starts in a few milliseconds instead of the second or two of a new
interpreter, and is a process of its own: its peak resident memory (``ru_maxrss``
from :func:`os.wait4` on that child alone, pages shared with this process
included, as a new interpreter would hold them too) and its exit code are
answered as one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def _preload() -> None:
    # What a load imports, so that each child finds it imported; nothing here
    # starts a thread or opens a store (both would not survive a fork).
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401

    import ringscope.cli
    import ringscope.graphs.embedded
    import ringscope.loaders.pipeline  # noqa: F401


def _child(request: dict[str, object]) -> int:
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    for key, value in env.items():  # an empty value unsets the variable
        if value == "":
            os.environ.pop(str(key), None)
        else:
            os.environ[str(key)] = str(value)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(str(request[name]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    from ringscope.cli import main

    argv = request["argv"]
    assert isinstance(argv, list)
    return main([str(a) for a in argv])


def serve() -> None:
    _preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                code = _child(request)
            except BaseException:  # what escaped main(): the test sees it as a traceback
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        answer = {"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
