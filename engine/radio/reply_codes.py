"""Reply codes per recipient: a keyed hash of (incident, stage, address).

The code printed in a call-out used to be the incident's (the tail of its id), so any
paged number could answer for anyone. Now each recipient gets its own four characters,
``HMAC-SHA256(key, incident / stage / address)`` in the reply alphabet: a reply carrying
them proves it comes from someone who received that very SMS. The key never leaves the
gateway (the worker and every Kafka reader see the incident code only); it comes from
``ENGINE_RADIO_REPLY_KEY`` (or the file ``ENGINE_RADIO_REPLY_KEY_FILE``) or, failing
that, from a random key file the gateway creates once under its data directory (mode
0600), so codes survive a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from engine.config import Settings
from engine.errors import ConfigError
from engine.radio.replies import CODE_ALPHABET, CODE_LENGTH, incident_code

_ALPHABET = "".join(sorted(CODE_ALPHABET))
KEY_BYTES = 32


def reply_code(key: bytes, incident_id: str, stage: int, address: str) -> str:
    """Four characters of the reply alphabet, stable for one (incident, stage, address)."""
    digest = hmac.new(key, f"{incident_id}\x1f{stage}\x1f{address}".encode(), hashlib.sha256)
    n = int.from_bytes(digest.digest()[:8], "big")
    out = []
    for _ in range(CODE_LENGTH):
        n, i = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[i])
    return "".join(out)


def with_code(text: str, incident_id: str, code: str) -> str:
    """``text`` with the incident's ``#CODE`` replaced by the recipient's (first one);
    unchanged when the text carries no incident code."""
    return text.replace(f"#{incident_code(incident_id)}", f"#{code}", 1)


def load_reply_key(settings: Settings) -> bytes:
    """The configured key, else the gateway's own key file (created on first use)."""
    configured = settings.radio_reply_key
    if configured is None and settings.radio_reply_key_file is not None:
        try:
            value = settings.radio_reply_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"radio_reply_key_file: cannot read: {exc}") from exc
        if len(value) < 16:
            raise ConfigError(f"{settings.radio_reply_key_file}: at least 16 characters")
        return value
    if configured is not None:
        value = configured.get_secret_value().encode()
        if len(value) < 16:
            raise ConfigError("radio_reply_key: at least 16 characters (ENGINE_RADIO_REPLY_KEY)")
        return value
    path = settings.data_dir / "radio-gateway" / "reply.key"
    return key_file(path)


def key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 16:
            raise ConfigError(
                f"{path}: reply key file is too short; delete it to make a new one"
            ) from None
        return key
    try:
        key = secrets.token_bytes(KEY_BYTES)
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key
