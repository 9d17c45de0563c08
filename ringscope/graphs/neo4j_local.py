"""Start a real Neo4j 5.26 Community server from Maven Central jars, for tests and local use.

The server is the small Maven module ``tools/neo4j-local`` (one launcher class over
``org.neo4j:neo4j``), run in its own JVM with only Bolt on 127.0.0.1 and auth off.
The module is built once with Maven (skipped while it is up to date); then::

    local = start_local_neo4j("var", port=0)
    store = Neo4jStore(local.uri, auth=None, ...)
    ...
    local.stop()

or from a shell, in the foreground until Ctrl-C::

    python -m ringscope.graphs.neo4j_local --work-dir var --port 7687

Timings measured on a 2-core machine: the first build resolves ~210 jars from Maven
Central (~40 s with the downloads), a rebuild after a source change ~10 s, the
up-to-date check ~10 ms; a start takes ~8-11 s on a new data folder and ~6-8 s on
an existing one; a stop under 1 s.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ringscope.errors import ConfigError, StoreError

#: The Maven module that holds the launcher (beside the package in a source checkout).
MODULE_DIR = Path(__file__).resolve().parents[2] / "tools" / "neo4j-local"
LAUNCHER_CLASS = "org.ringscope.neo4jlocal.Launcher"
READY = "NEO4J_READY "

#: JVM flags that the Neo4j tarball's launcher sets and that Neo4j asks for when they
#: are missing (reflective access for the page cache and native file-channel calls).
JVM_FLAGS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+DisableExplicitGC",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dlog4j2.disable.jmx=true",
)

#: Settings for a development server: plans are not thrown away each time a small
#: database changes size (tests empty and refill it constantly); every statement of
#: the store seeks by unique id or element id, so its plans do not depend on sizes.
DEFAULT_CONF: dict[str, str] = {
    "dbms.cypher.min_replan_interval": "1h",
    "dbms.cypher.statistics_divergence_threshold": "1.0",
}

#: Settings for bulk loads (``benchmarks/neo4j_load.py``): a loader batch is one
#: transaction (200,000 rows and their relationships), so its state is kept off the
#: heap, where it does not have to be copied by the garbage collector, and the limit on
#: all transactions' memory is raised above the default 70% of the heap.
BENCH_CONF: dict[str, str] = {
    "db.tx_state.memory_allocation": "OFF_HEAP",
    "dbms.memory.transaction.total.max": "2g",
}

_INSTALL_HINT = (
    "the local Neo4j needs a Java 17 or 21 JDK and Maven: "
    "on Debian/Ubuntu `sudo apt-get install openjdk-17-jdk-headless maven`, "
    "on macOS `brew install openjdk@17 maven`; or point NEO4J_URI / RINGSCOPE_STORE "
    "at a running Neo4j 5 (for example `docker compose up neo4j`)"
)


@dataclass
class LocalNeo4j:
    """A running local Neo4j server.

    Attributes
    ----------
    uri : str
        Its Bolt URI, ``bolt://127.0.0.1:PORT``.
    home : pathlib.Path
        Its folder (data, transaction logs, ``logs/debug.log``, ``neo4j.conf``).
    process : subprocess.Popen
        The JVM.
    """

    uri: str
    home: Path
    process: subprocess.Popen[str]
    _output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))

    @property
    def port(self) -> int:
        """The Bolt port."""
        return int(self.uri.rsplit(":", 1)[1])

    def output(self) -> str:
        """The last lines the JVM printed."""
        return "\n".join(self._output)

    def stop(self, timeout: float = 60.0) -> None:
        """Shut the server down cleanly (SIGTERM), killing it after ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            if self.process.stdin is not None:
                self.process.stdin.close()

    def __enter__(self) -> LocalNeo4j:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ConfigError(f"`java` not found; {_INSTALL_HINT}")
    return found


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m is None:
        raise ConfigError(f"cannot tell the version of {java}: {out.stderr.strip()}")
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _up_to_date(module: Path) -> bool:
    cp_file = module / "target" / "cp.txt"
    classes = module / "target" / "classes"
    if not cp_file.exists() or not classes.exists():
        return False
    built = cp_file.stat().st_mtime
    sources = [module / "pom.xml", *(module / "src").rglob("*.java")]
    if any(p.stat().st_mtime > built for p in sources):
        return False
    jars = cp_file.read_text().strip().split(os.pathsep)
    return all(Path(j).exists() for j in jars)


def build_launcher(module: Path = MODULE_DIR, *, force: bool = False) -> str:
    """Build the launcher module with Maven unless it is up to date; return its classpath.

    Parameters
    ----------
    module : pathlib.Path
        The Maven module folder (``tools/neo4j-local``).
    force : bool
        Build even when the module looks up to date.

    Returns
    -------
    str
        The JVM classpath: the compiled launcher, then every runtime jar.

    Raises
    ------
    ConfigError
        When the module, Maven or Java is missing, or the build fails.
    """
    if not (module / "pom.xml").exists():
        raise ConfigError(
            f"{module / 'pom.xml'} not found: the local Neo4j runs from a source checkout"
        )
    if force or not _up_to_date(module):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ConfigError(f"`mvn` not found; {_INSTALL_HINT}")
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(module / "pom.xml"),
            "package",
            "dependency:build-classpath",
            "-Dmdep.outputFile=target/cp.txt",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-4000:]
            raise ConfigError(f"building {module} failed ({' '.join(cmd)}):\n{tail}")
        (module / "target" / "cp.txt").touch()
    classpath = (module / "target" / "cp.txt").read_text().strip()
    return os.pathsep.join([str(module / "target" / "classes"), classpath])


def start_local_neo4j(
    work_dir: str | os.PathLike[str],
    port: int = 0,
    *,
    name: str = "local",
    heap: str = "1g",
    pagecache: str = "512m",
    timeout: float = 180.0,
    conf: Mapping[str, str] | None = None,
    module: Path = MODULE_DIR,
    home: str | os.PathLike[str] | None = None,
) -> LocalNeo4j:
    """Start Neo4j in its own JVM and wait until Bolt accepts connections.

    Parameters
    ----------
    work_dir : path
        The project's work folder; the server lives in ``WORK_DIR/neo4j/NAME``
        (data is kept between starts).
    port : int
        Bolt port on 127.0.0.1; 0 picks a free one (see ``LocalNeo4j.uri``).
    name : str
        Sub-folder of ``WORK_DIR/neo4j``.
    heap : str
        JVM heap (``-Xms``/``-Xmx``), e.g. ``"1g"``.
    pagecache : str
        Neo4j page cache, e.g. ``"512m"``.
    timeout : float
        Seconds to wait for the ready line.
    conf : mapping, optional
        Extra Neo4j settings (``neo4j.conf`` names), added to :data:`DEFAULT_CONF`.
    module : pathlib.Path
        The launcher's Maven module.
    home : path, optional
        The server's folder, instead of ``WORK_DIR/neo4j/NAME`` (e.g. one that
        ``neo4j_bulk.bulk_import`` has just imported into).

    Returns
    -------
    LocalNeo4j
        The running server; call :meth:`LocalNeo4j.stop` (or use it as a context manager).

    Raises
    ------
    ConfigError
        Java or Maven missing, Java too old, the build failed.
    StoreError
        The server exited or did not become ready in time; the message carries its output.
    """
    java = _java()
    major = _java_major(java)
    if major < 17:
        raise ConfigError(f"{java} is Java {major}; {_INSTALL_HINT}")
    classpath = build_launcher(module)
    home = Path(home).resolve() if home is not None else Path(work_dir).resolve() / "neo4j" / name
    home.mkdir(parents=True, exist_ok=True)
    cmd = [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        *JVM_FLAGS,
        "-cp",
        classpath,
        LAUNCHER_CLASS,
        "--dir",
        str(home),
        "--port",
        str(port),
        "--pagecache",
        pagecache,
        "--watch-stdin",
    ]
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        cmd += ["--conf", f"{key}={value}"]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    local = LocalNeo4j(uri="", home=home, process=process)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            local._output.append(line)
            if line.startswith(READY) and not ready.is_set():
                local.uri = line[len(READY) :].strip()
                ready.set()
        ready.set()  # the JVM is gone: wake the waiter

    threading.Thread(target=pump, name=f"neo4j-local-{name}", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if time.monotonic() > deadline:
            break
    if not local.uri:
        local.stop(timeout=10)
        log = home / "logs" / "debug.log"
        log_tail = (
            "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""
        )
        why = "did not become ready" if process.returncode in (None, -9) else "exited"
        raise StoreError(
            f"local Neo4j {why} within {timeout:.0f} s (exit code {process.returncode}); "
            f"output:\n{local.output()}\n{log} (tail):\n{log_tail}"
        )
    return local


def main(argv: list[str] | None = None) -> int:
    """Run a local Neo4j in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m ringscope.graphs.neo4j_local")
    parser.add_argument("--work-dir", default=os.environ.get("RINGSCOPE_WORK_DIR", "var"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("NEO4J_LOCAL_PORT", "7687")))
    parser.add_argument("--name", default="local")
    parser.add_argument("--heap", default="1g")
    parser.add_argument("--pagecache", default="512m")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()
    local = start_local_neo4j(
        args.work_dir, args.port, name=args.name, heap=args.heap, pagecache=args.pagecache
    )
    print(f"Neo4j ready at {local.uri} after {time.monotonic() - started:.1f} s ({local.home})")
    print(
        f"use it with: RINGSCOPE_STORE={local.uri.replace('bolt://', 'neo4j://')}  (Ctrl-C stops)"
    )
    sys.stdout.flush()
    try:
        local.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
