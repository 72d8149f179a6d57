"""Bearer tokens with roles, stored as hashes only.

``engine token create --role ROLE --name NAME`` prints a new token once; the file keeps
its SHA-256, its name (the actor recorded in every event the token causes), its role and
whether it was revoked. The API re-reads the file when it changes, so a revocation
takes effect without a restart. A presented token is hashed and compared with every
stored hash in constant time (no early exit, no timing hint of which prefix matched).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
RANK = {"viewer": 0, "operator": 1, "admin": 2}
"""a role may do what the roles below it may"""
PREFIX = "txe_"
MAX_TOKEN = 200
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")


class TokenError(ValueError):
    """A token file or a request to it that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    role: Role
    sha256: str
    created_at: str
    revoked_at: str | None = None

    def may(self, role: Role) -> bool:
        return self.revoked_at is None and RANK[self.role] >= RANK[role]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._tokens: list[Token] = []
        self._stamp: tuple[int, int] | None = None

    # --- reading --------------------------------------------------------------------
    def tokens(self) -> list[Token]:
        self._reload()
        return list(self._tokens)

    def _reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._tokens, self._stamp = [], None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._tokens = _parse(self.path)
        self._stamp = stamp

    def check(self, presented: str | None) -> Token | None:
        """The live token matching ``presented``, or None."""
        if not presented or len(presented) > MAX_TOKEN:
            return None
        self._reload()
        digest = _digest(presented).encode()
        found: Token | None = None
        for t in self._tokens:  # every entry compared: the time does not say which
            if hmac.compare_digest(digest, t.sha256.encode()) and t.revoked_at is None:
                found = t
        return found

    # --- writing --------------------------------------------------------------------
    def create(self, role: str, name: str) -> tuple[Token, str]:
        if role not in ROLES:
            raise TokenError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
            raise TokenError("name: 1-64 characters of letters, digits, '-', '_', '.', '@'")
        tokens = self.tokens()
        if any(t.name == name and t.revoked_at is None for t in tokens):
            raise TokenError(f"a live token named {name!r} exists; revoke it first")
        secret = PREFIX + secrets.token_urlsafe(32)
        token = Token(
            id=secrets.token_hex(4),
            name=name,
            role=role,
            sha256=_digest(secret),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._write([*tokens, token])
        return token, secret

    def revoke(self, ident: str) -> Token:
        tokens = self.tokens()
        hits = [t for t in tokens if ident in (t.id, t.name) and t.revoked_at is None]
        if not hits:
            raise TokenError(f"no live token with id or name {ident!r}")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        revoked = {t.id for t in hits}
        updated = [
            Token(**{**asdict(t), "revoked_at": now}) if t.id in revoked else t for t in tokens
        ]
        self._write(updated)
        return next(t for t in updated if t.id in revoked)

    def _write(self, tokens: list[Token]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"tokens": [asdict(t) for t in tokens]}, indent=1) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None


def _parse(path: Path) -> list[Token]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenError(f"{path}: not a token file: {exc}") from exc
    rows = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise TokenError(f'{path}: expected {{"tokens": [...]}}')
    out = []
    for i, row in enumerate(rows):
        try:
            token = Token(**row)
        except TypeError as exc:
            raise TokenError(f"{path}: tokens[{i}]: {exc}") from exc
        if token.role not in ROLES:
            raise TokenError(f"{path}: tokens[{i}].role: {token.role!r} is not a role")
        out.append(token)
    return out
