"""The servers of the red-team tests: the real ``ringscope serve`` in its own process, and
a real nginx (Debian's package, installed by ``make proxy``) in front of it.

``served(...)`` starts ``ringscope serve`` on a private copy of the session's generated
marketplace (``tests/helpers/market.py``) with the given ``RINGSCOPE_*`` settings and
stops it with Ctrl-C (SIGINT), as an operator would; ``Nginx`` runs nginx with a
configuration made by the test, in the foreground, as a child of the test.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers.market import Market

from ringscope.api.auth import add_user

NGINX = Path("/usr/sbin/nginx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def client_from(source: str, base_url: str, **kw: object) -> httpx.Client:
    """An HTTP client whose connections come from ``source`` (a loopback address such as
    127.0.0.2: on Linux all of 127.0.0.0/8 is this machine), so that the server's peer
    is an address other than the proxy's."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=base_url, transport=transport, timeout=30, **kw)  # type: ignore[arg-type]


@dataclass
class Served:
    """A running ``ringscope serve``."""

    url: str
    port: int
    store: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def stop(self) -> None:
        """Ctrl-C, and wait for the graceful shutdown (it writes the refusals' summaries)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def make_users(path: Path, users: dict[str, str]) -> dict[str, str]:
    """A users file with ``users`` (name -> role) made by the library the ``ringscope key``
    command calls; their keys by name."""
    return {name: add_user(path, name, role) for name, role in users.items()}


@contextmanager
def served(market: Market, root: Path, env: dict[str, str]) -> Iterator[Served]:
    """``ringscope serve`` on a copy of the market's store, with ``env`` added to the
    environment; ready (``/health`` answers 200) when entered."""
    root.mkdir(parents=True, exist_ok=True)
    store = root / "served.duckdb"
    shutil.copy(market.store_path, store)
    port = free_port()
    log = root / "serve.log"
    full_env = {
        **os.environ,
        "RINGSCOPE_WORK_DIR": str(root / "var"),
        "RINGSCOPE_USERS_FILE": str(root / "users.json"),
        **env,
    }
    cmd = [sys.executable, "-m", "ringscope.cli", "serve", "--store", str(store)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = Served(f"http://127.0.0.1:{port}", port, store, log, process)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ringscope serve ended: {app.log_text()}")
            try:
                if httpx.get(f"{app.url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"ringscope serve did not start: {app.log_text()}")
            time.sleep(0.2)
        yield app
    finally:
        app.stop()


def htpasswd(path: Path, users: dict[str, str]) -> None:
    """An htpasswd file for nginx's ``auth_basic``, salted SHA-1 (``{SSHA}``, RFC 2307),
    without Apache's ``htpasswd`` tool."""
    lines = []
    for name, password in users.items():
        salt = os.urandom(8)
        digest = hashlib.sha1(password.encode() + salt).digest()
        lines.append(f"{name}:{{SSHA}}{base64.b64encode(digest + salt).decode()}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)


class Nginx:
    """Debian's nginx, in the foreground, with the ``http`` block ``servers``."""

    def __init__(self, root: Path, servers: str) -> None:
        if not NGINX.exists():
            # `make test` installs it; only an explicit opt-out turns this into a skip.
            if os.environ.get("RINGSCOPE_TESTS_WITHOUT_PROXY") == "1":
                pytest.skip("no /usr/sbin/nginx (run `make proxy`)")
            pytest.fail("no /usr/sbin/nginx: run `make proxy` (Debian package nginx)")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        temp = "\n".join(
            f"  {kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi")
        )
        temp += f"\n  uwsgi_temp_path {root / 'uwsgi'};\n  scgi_temp_path {root / 'scgi'};"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers read the test's files
        (root / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} warn;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  access_log {root / 'access.log'};\n{temp}\n{servers}\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        cmd = [str(NGINX), "-p", str(self.root), "-c", str(self.root / "nginx.conf")]
        check = subprocess.run(
            [*cmd, "-e", str(self.root / "error.log"), "-t"], capture_output=True
        )
        assert check.returncode == 0, check.stderr.decode()
        self.process = subprocess.Popen(
            [*cmd, "-e", str(self.root / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def wait_for(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.process is not None and self.process.poll() is None, self.errors()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx does not listen on {port}: {self.errors()}") from e
                time.sleep(0.1)

    def errors(self) -> str:
        path = self.root / "error.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
