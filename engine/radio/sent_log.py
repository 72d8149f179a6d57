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
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

KEEP_FOR = 31 * 24 * 3600.0  # a little over the acks topic's 30-day retention


@dataclass(frozen=True)
class SentEntry:
    key: str
    incident_id: str
    radio_id: str
    at: float  # unix seconds


class SentLog:
    """Append-only JSON lines; entries older than ``keep_for`` are dropped on open."""

    def __init__(self, path: Path, *, keep_for: float = KEEP_FOR) -> None:
        self.path = path
        self._keep_for = keep_for
        self.entries: dict[str, SentEntry] = {}
        self._load()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def add(self, entry: SentEntry) -> None:
        if entry.key in self.entries:
            return
        line = json.dumps(entry.__dict__, ensure_ascii=False, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)
        self.entries[entry.key] = entry

    def remember(self, entry: SentEntry) -> None:
        """Known from elsewhere (the acks topic): kept in memory, not re-written."""
        self.entries.setdefault(entry.key, entry)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _load(self) -> None:
        if not self.path.exists():
            return
        cutoff = time.time() - self._keep_for
        stale = False
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    data = json.loads(line)
                    entry = SentEntry(
                        str(data["key"]),
                        str(data["incident_id"]),
                        str(data["radio_id"]),
                        float(data["at"]),
                    )
                    if entry.at < cutoff:
                        stale = True
                        continue
                    self.entries[entry.key] = entry
                    continue
                stale = True  # a torn last line from a crash mid-write
        if stale:
            self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for e in self.entries.values():
                f.write(json.dumps(e.__dict__, ensure_ascii=False, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
