"""The app as the tests use it: its test users and their keys, and the real app served
by uvicorn on a free localhost port."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ringscope.api.auth import Access
    from ringscope.api.refusals import RefusalLimits
    from ringscope.graphs.store import GraphStore

#: The app's users in these tests, by name, with their roles; see ``key_of``.
USERS = {
    "test-viewer": "viewer",
    "test-investigator": "investigator",
    "test-admin": "admin",
    "inspector-7": "investigator",
    "analyst-3": "investigator",
    "form-user": "investigator",
    "browser-user": "investigator",
    "browser-viewer": "viewer",
}


def key_of(name: str) -> str:
    """The API key of the test user ``name``."""
    return f"rsk_test_{name}"


def auth(name: str) -> dict[str, str]:
    """Headers that authenticate as the test user ``name``."""
    return {"Authorization": f"Bearer {key_of(name)}"}


def access_for(users: dict[str, str] | None = None) -> Access:
    """Who may use the app in the tests: ``USERS`` (or ``users``), each with ``key_of``."""
    from ringscope.api.auth import Access, User, Users, check_role, hash_key

    chosen = USERS if users is None else users
    return Access(Users(User(n, check_role(r), hash_key(key_of(n))) for n, r in chosen.items()))


class ServedApp:
    """The real app served by uvicorn on a free localhost port, in a thread."""

    def __init__(
        self,
        store_path: Path | None,
        access: Access | None = None,
        *,
        store: GraphStore | None = None,
        refusals: RefusalLimits | None = None,
    ) -> None:
        """Serve the embedded store at ``store_path``, or ``store`` (left open at exit);
        ``refusals``: how many refused requests the audit log keeps (default: settings)."""
        import socket
        import threading

        import uvicorn

        from ringscope.api.app import create_app
        from ringscope.graphs.embedded import EmbeddedStore

        self._owned = store is None
        if store is None:
            assert store_path is not None
            store = EmbeddedStore(store_path)
        self.store = store
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(store=self.store, access=access or access_for(), refusals=refusals),
            log_level="warning",
            lifespan="on",
            access_log=False,
            proxy_headers=False,  # as `ringscope serve`: the app trusts on the socket's peer
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ServedApp:
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        if self._owned:
            self.store.close()
