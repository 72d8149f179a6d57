"""The durable record of pages already sent, so a restart never pages twice.

Why a local log *and* the ``acks`` topic: the gateway appends an idempotency key here
(fsync) the moment the modem returns ``+CMGS`` / the PTT is released, before it
publishes the ``delivered`` Ack and commits the offset. That leaves the smallest window
in which a crash forgets a page (one fsync, not a Kafka round trip). On start the
gateway also reads ``delivered`` Acks (which carry the ``idempotency_key``) from
``acks``, so a gateway that lost its disk, or took over another device's partitions
after a rebalance, still knows what was paged. The one window neither closes: the
modem sent the SMS and the port died before ``+CMGS`` came back; the gateway cannot
know, and pages again rather than risk a missed call-out.

Each line also keeps the stage, the dispatch area (replies after a restart are routed
to the area's owner), whether the page was a stand-down (the incident takes no more
replies) and, for an allow-listed number outside the directory, the number. A line that
is torn, not UTF-8 or not an entry is skipped (and dropped by rewriting the file), never
a reason not to start.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.radio.errors import RadioError

KEEP_FOR = 31 * 24 * 3600.0  # a little over the acks topic's 30-day retention


class SentLogBusy(RadioError):
    """Another gateway holds the sent log."""


@dataclass(frozen=True)
class SentEntry:
    key: str
    incident_id: str
    radio_id: str
    at: float  # unix seconds
    stage: int = 0
    area: str | None = None
    stand_down: bool = False
    to: str | None = None  # the number paged, when it is not in the directory
    broadcast: bool = False  # a broadcast message (``incident_id`` is the broadcast id)

    def to_line(self) -> bytes:
        data = {k: v for k, v in self.__dict__.items() if v is not None and v is not False}
        return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> SentEntry:
        """Raises ValueError (UnicodeDecodeError, JSONDecodeError), KeyError, TypeError."""
        data = json.loads(line.decode("utf-8"))
        area, to = data.get("area"), data.get("to")
        return cls(
            str(data["key"]),
            str(data["incident_id"]),
            str(data["radio_id"]),
            float(data["at"]),
            int(data.get("stage", 0)),
            area if isinstance(area, str) else None,
            data.get("stand_down") is True,
            to if isinstance(to, str) else None,
            data.get("broadcast") is True,
        )


class SentLog:
    """Append-only JSON lines; entries older than ``keep_for`` are dropped on open."""

    def __init__(self, path: Path, *, keep_for: float = KEEP_FOR) -> None:
        self.path = path
        self._keep_for = keep_for
        self.entries: dict[str, SentEntry] = {}
        self.skipped = 0  # unreadable lines found on open
        path.parent.mkdir(parents=True, exist_ok=True)
        # One gateway per log: a second one would page what the first is paging.
        self._lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise SentLogBusy(f"{path} is in use by another gateway") from None
        self._fd = -1
        try:
            self._load()
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except BaseException:
            os.close(self._lock)
            raise

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def add(self, entry: SentEntry) -> None:
        if entry.key in self.entries:
            return
        os.write(self._fd, entry.to_line())
        os.fsync(self._fd)
        self.entries[entry.key] = entry

    def remember(self, entry: SentEntry) -> None:
        """Known from elsewhere (the acks topic): kept in memory, not re-written."""
        self.entries.setdefault(entry.key, entry)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        cutoff = time.time() - self._keep_for
        # A last line without its newline was torn by a crash: appending after it would
        # glue the next entry onto it, so the file is rewritten.
        rewrite = bool(raw) and not raw.endswith(b"\n")
        for line in raw.splitlines():
            try:
                entry = SentEntry.from_line(line)
            except (ValueError, TypeError, KeyError, AttributeError):
                self.skipped += 1
                rewrite = True
                continue
            if entry.at < cutoff:
                rewrite = True
                continue
            self.entries.setdefault(entry.key, entry)
        if rewrite:
            self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as f:
            for e in self.entries.values():
                f.write(e.to_line())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
