"""Operators, sessions, control and rate limits of the console back end (no web framework).

Credentials come from a YAML file (``--users FILE`` or ``INTBALL_UI_USERS``)::

    users:
      alice: {role: operator, password: "scrypt$16384$8$1$<salt hex>$<hash hex>"}
      bob:   {role: observer, password: "scrypt$..."}

(``python -m intball_teleop.server.auth hash`` prints a hash for a password read from
stdin). Without a file the server makes two random one-run tokens (operator, observer) and
prints them: nothing that works is shipped. Roles: ``operator`` may take control and
command; ``observer`` sees everything; any logged-in session may send an emergency stop.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROLES = ("operator", "observer")
SESSION_IDLE_S = 12 * 3600.0


class AuthError(ValueError):
    pass


def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str | None = None  # scrypt; None for token users
    token: str | None = None  # one-run demo token


@dataclass
class Credentials:
    users: dict[str, User] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> Credentials:
        path = Path(path)
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuthError(f"{path}: readable by group/others (chmod 600 it)")
        data = yaml.safe_load(path.read_text()) or {}
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict) or not users:
            raise AuthError(f"{path}: expected a mapping 'users: {{name: {{role, password}}}}'")
        out = {}
        for name, entry in users.items():
            if not isinstance(entry, dict) or entry.get("role") not in ROLES:
                raise AuthError(f"{path}: users.{name}.role must be one of {', '.join(ROLES)}")
            pw = entry.get("password")
            if not isinstance(pw, str) or not pw.startswith("scrypt$"):
                raise AuthError(f"{path}: users.{name}.password must be a scrypt hash (see --help)")
            out[str(name)] = User(str(name), entry["role"], pw)
        return cls(out)

    @classmethod
    def demo_tokens(cls) -> Credentials:
        """Two random tokens valid for this run only (printed by the server)."""
        return cls(
            {
                "demo-operator": User("demo-operator", "operator", token=secrets.token_urlsafe(18)),
                "demo-observer": User("demo-observer", "observer", token=secrets.token_urlsafe(18)),
            }
        )

    def login(self, username: str | None, password: str | None, token: str | None) -> User:
        if token:
            for user in self.users.values():
                if user.token is not None and hmac.compare_digest(user.token, token):
                    return user
            raise AuthError("invalid token")
        user = self.users.get(username or "")
        if (
            user is None
            or user.password_hash is None
            or not verify_password(password or "", user.password_hash)
        ):
            raise AuthError("invalid user name or password")
        return user


@dataclass
class Session:
    id: str
    user: str
    role: str
    created: float
    last_seen: float


class TokenBucket:
    """``rate`` per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.t = burst, clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Sessions:
    """Logged-in sessions and who holds control."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.by_id: dict[str, Session] = {}
        self.controller: str | None = None  # session id
        self.buckets: dict[str, TokenBucket] = {}

    def create(self, user: User) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), user.name, user.role, now, now)
        self.by_id[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        s = self.by_id.get(sid or "")
        if s is None:
            return None
        now = self.clock()
        if now - s.last_seen > SESSION_IDLE_S:
            self.end(s.id)
            return None
        s.last_seen = now
        return s

    def end(self, sid: str) -> None:
        self.by_id.pop(sid, None)
        self.buckets.pop(sid, None)
        if self.controller == sid:
            self.controller = None

    def holder(self) -> Session | None:
        return self.by_id.get(self.controller or "")

    def take(self, s: Session, force: bool = False) -> None:
        if s.role != "operator":
            raise AuthError(f"{s.user} is an observer and cannot take control")
        holder = self.holder()
        if holder is not None and holder.id != s.id and not force:
            raise AuthError(f"control is held by {holder.user}")
        self.controller = s.id

    def release(self, s: Session) -> None:
        if self.controller == s.id:
            self.controller = None

    def allow_command(self, s: Session, rate: float = 10.0, burst: float = 20.0) -> bool:
        bucket = self.buckets.setdefault(s.id, TokenBucket(rate, burst))
        return bucket.take()


def users_file_from_env() -> str | None:
    return os.environ.get("INTBALL_UI_USERS") or None


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] != "hash":
        print("usage: python -m intball_teleop.server.auth hash  (reads the password from stdin)")
        return 2
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 10:
        print("password too short (>= 10 characters)", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
