"""Users, roles and API keys (pure logic; the HTTP side is in ``ringscope.api.deps``).

Three roles, each allowing what the one before allows:

- ``viewer``: the queue, clusters, entities and runs, with identifier values redacted;
- ``investigator``: also decisions, unredacted identifiers and case-file exports;
- ``admin``: also the audit log and the effective settings.

An API key is a random 256-bit token (``rsk_...``). Only its SHA-256 is kept (in the
users file or in memory): a key of that entropy cannot be guessed back from its hash, and a
fast hash keeps every request cheap.

Behind a reverse proxy, who connects (the socket's peer) and who the request is for (the
client the proxy names in ``X-Forwarded-For``) differ: :class:`TrustedProxies` says whose
forwarded headers count and which address is the client's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from ringscope.errors import ConfigError

log = logging.getLogger(__name__)

Role = Literal["viewer", "investigator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "investigator", "admin")
KEY_PREFIX = "rsk_"
#: Longest key or user name accepted from a request: anything longer is refused unread.
MAX_KEY_LENGTH = 200
MAX_NAME_LENGTH = 100


def allows(role: Role, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may."""
    return ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return cast(Role, role)


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ConfigError(
            f"a user name is 1 to {MAX_NAME_LENGTH} printable characters, got {name!r}"
        )
    return name


def new_key() -> str:
    """A new random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    key_hash: str = ""  # empty: a user known by name only (reverse-proxy mode)


class Users:
    """Who may use the app: users by key hash (API keys) and by name (reverse proxy)."""

    def __init__(self, users: Iterable[User] = ()) -> None:
        self._by_hash: dict[str, User] = {}
        self._by_name: dict[str, User] = {}
        for u in users:
            self.add(u)

    def add(self, user: User) -> None:
        check_role(user.role)
        if user.key_hash:
            if not user.key_hash.startswith("sha256:") or len(user.key_hash) != 71:
                raise ConfigError(f"user {user.name!r}: key hash must be 'sha256:' + 64 hex")
            self._by_hash[user.key_hash] = user
        self._by_name[user.name] = user

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[User]:
        return iter(sorted(self._by_name.values(), key=lambda u: u.name))

    def by_key(self, key: str) -> User | None:
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        return self._by_hash.get(hash_key(key))

    def by_name(self, name: str) -> User | None:
        return self._by_name.get(name)

    @staticmethod
    def read(path: Path) -> Users:
        """The users file: ``{"users": [{"name", "role", "key_sha256"}]}`` (missing: none)."""
        if not path.exists():
            return Users()
        try:
            doc = json.loads(path.read_text("utf-8"))
            rows = doc["users"]
            return Users(
                User(
                    check_name(str(r["name"])),
                    check_role(str(r["role"])),
                    str(r.get("key_sha256") or ""),
                )
                for r in rows
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"users file {path}: {e}") from e


def add_user(path: Path, name: str, role: str) -> str:
    """Add (or give a new key to) ``name`` with ``role`` in the users file; return the
    key, which is shown once and stored only as its hash. The file is written atomically
    and readable by its owner only."""
    name, checked = check_name(name), check_role(role)
    users = {u.name: u for u in Users.read(path)}
    key = new_key()
    users[name] = User(name, checked, hash_key(key))
    doc = {
        "users": [
            {"name": u.name, "role": u.role, "key_sha256": u.key_hash}
            for u in sorted(users.values(), key=lambda u: u.name)
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".users-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return key


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The most ``X-Forwarded-For`` entries read, from the right (each trusted hop adds one).
MAX_HOPS = 32


def parse_address(text: str) -> Address | None:
    """An address as a proxy writes it in ``X-Forwarded-For`` (``203.0.113.7``,
    ``203.0.113.7:5123``, ``2001:db8::1``, ``[2001:db8::1]:5123``), an IPv4-mapped IPv6
    address as its IPv4 address; ``None`` for anything else."""
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The reverse proxies whose forwarded headers count: single addresses and networks.

    Trust is decided on the socket's peer, the address the TCP connection comes from,
    never on a header: a header is written by whoever sends the request."""

    networks: tuple[Network, ...] = ()

    @staticmethod
    def parse(entries: Iterable[str]) -> TrustedProxies:
        """``["127.0.0.1", "10.0.0.0/8", "::1"]``; a bad entry is a ``ConfigError``."""
        networks: list[Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as e:
                raise ConfigError(
                    f"trusted proxies: {entry!r} is not an IP address or network "
                    "(e.g. 127.0.0.1 or 10.0.0.0/8)"
                ) from e
        return TrustedProxies(tuple(networks))

    def trusts(self, address: str | Address | None) -> bool:
        """Whether ``address`` (a peer or an ``X-Forwarded-For`` entry) is a trusted proxy."""
        parsed = parse_address(address) if isinstance(address, str) else address
        return parsed is not None and any(parsed in n for n in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address: ``peer`` itself unless it is a trusted proxy; from a
        trusted proxy, the right-most ``X-Forwarded-For`` entry that is not itself a
        trusted proxy (each proxy appends the address it received the request from, so
        entries left of the first untrusted one were written by the client and prove
        nothing). ``forwarded_for`` holds the header's values, in order.

        When every entry is a trusted proxy, the left-most is the client. An entry that is
        not an address stops the walk at the last trusted hop: no proxy writes one, so the
        hop that passed it on is the last address known to be true."""
        known = parse_address(peer)
        if known is None or not self.trusts(known):
            return str(known) if known is not None else peer
        entries = [e for value in forwarded_for for e in value.split(",") if e.strip()]
        for entry in reversed(entries[-MAX_HOPS:]):
            address = parse_address(entry)
            if address is None:
                break
            known = address
            if not self.trusts(address):
                break
        return str(known)


@dataclass
class Access:
    """How the app recognises its callers."""

    users: Users
    mode: Literal["keys", "proxy"] = "keys"
    proxy_user_header: str = "X-Forwarded-User"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    #: ``trusted_proxies`` parsed (a bad entry is a ``ConfigError`` here, at start-up).
    proxies: TrustedProxies = field(init=False, repr=False)

    #: The users file ``users`` was read from: read again when it changes, so that a key
    #: made with ``ringscope key`` while the app runs works at once (``None``: fixed users).
    users_file: Path | None = None
    #: Users of this start only (``ringscope serve``'s one-time admin), kept when the
    #: users file is read again.
    extra_users: list[User] = field(default_factory=list)
    _stamp: tuple[int, int, int] | None = field(default=None, init=False, repr=False)
    _reading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.proxies = TrustedProxies.parse(self.trusted_proxies)
        self._stamp = _file_stamp(self.users_file)

    def add_for_this_start(self, user: User) -> None:
        """Let ``user`` in until the app stops, whatever the users file says."""
        self.extra_users.append(user)
        self.users.add(user)

    def current_users(self) -> Users:
        """The users as the users file says now: one ``stat`` per call, and the file read
        again only when it changed (time, size or inode: ``ringscope key`` replaces it).
        A file that cannot be read then keeps the users read before, with a warning."""
        if self.users_file is None:
            return self.users
        stamp = _file_stamp(self.users_file)
        if stamp != self._stamp:
            with self._reading:
                if stamp != self._stamp:
                    try:
                        self.users = Users.read(self.users_file)
                        for user in self.extra_users:
                            self.users.add(user)
                    except ConfigError as e:
                        log.warning("kept the users read before: %s", e)
                    self._stamp = stamp
        return self.users

    @staticmethod
    def from_settings() -> Access:
        from ringscope.settings import get_settings

        s = get_settings()
        path = s.users_path()
        return Access(
            users=Users.read(path),
            mode=s.auth,
            proxy_user_header=s.proxy_user_header,
            trusted_proxies=tuple(s.trusted_proxies),
            users_file=path,
        )


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What tells that a file changed: modification time, size and inode (``None``:
    no file)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
