"""Progress of broadcasts, folded from the ``broadcasts`` topic (pure: records in, no I/O).

Counts are of distinct messages (idempotency keys), so a report read twice (a gateway
restarted, a rebalance) counts once. The time left is the measured pace (messages done
per second since the first) applied to what is left, or a nominal pace per message
before there is one.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.broadcast.model import REPORT_STATUSES

MAX_BROADCASTS = 500
"""Broadcasts kept (the oldest go first). A running one keeps a key set per outcome (its
messages' idempotency keys, at most its message count each); a finished one only counts."""
MAX_REPLIES = 200
"""Replies kept per broadcast (all are counted)."""
NOMINAL_S_PER_MESSAGE = 2.0
"""The time-left estimate before anything was sent: a few seconds per SMS at one modem."""

TERMINAL = frozenset({"done", "cancelled", "expired"})


@dataclass
class BroadcastProgress:
    broadcast_id: str
    notice: dict[str, Any] | None = None
    cancel: dict[str, Any] | None = None
    sent: set[str] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    first_at: float | None = None
    last_at: float | None = None
    replies: list[dict[str, Any]] = field(default_factory=list)
    reply_count: int = 0
    frozen: dict[str, int] | None = None
    """once every message is finished: the counts, and the key sets are let go (memory)"""

    def count(self, status: str) -> int:
        if self.frozen is not None:
            return self.frozen.get(status, 0)
        return len(self._keys(status))

    def _keys(self, status: str) -> set[str]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "expired": self.expired,
        }[status]

    def freeze(self) -> None:
        self.frozen = {s: len(self._keys(s)) for s in REPORT_STATUSES}
        self.frozen["finished"] = len(self.sent | self.failed | self.cancelled | self.expired)
        for s in REPORT_STATUSES:
            self._keys(s).clear()

    @property
    def messages(self) -> int:
        return int((self.notice or {}).get("messages") or 0)

    @property
    def finished(self) -> int:
        """Messages with a final outcome: sent, failed (never sent), dropped."""
        if self.frozen is not None:
            return self.frozen["finished"]
        return len(self.sent | self.failed | self.cancelled | self.expired)

    def state(self, now: float) -> str:
        if self.notice is None:
            return "unknown"
        left = self.messages - self.finished
        if left <= 0:
            if self.cancel is not None and self.count("cancelled"):
                return "cancelled"
            return "expired" if self.count("expired") else "done"
        if self.cancel is not None:
            return "cancelling"
        expires = _ts(self.notice.get("expires_at"))
        if expires is not None and now > expires:
            return "expiring"
        return "queued" if self.first_at is None else "sending"

    def eta_s(self, now: float) -> float:
        return eta_s(
            self.messages - self.finished,
            self.finished,
            self.first_at,
            self.last_at,
            now,
            done=self.state(now) in TERMINAL or self.cancel is not None,
        )

    def summary(self, now: float) -> dict[str, Any]:
        n = self.notice or {}
        return {
            "broadcast_id": self.broadcast_id,
            "state": self.state(now),
            "priority": n.get("priority"),
            "to": n.get("to"),
            "area": n.get("area"),
            "text": n.get("text"),
            "text_en": n.get("text_en"),
            "actor": n.get("actor"),
            "created_at": n.get("created_at"),
            "expires_at": n.get("expires_at"),
            "recipients": int(n.get("recipients") or 0),
            "messages": self.messages,
            "poc_groups": int(n.get("poc_groups") or 0),
            "sms": int(n.get("sms") or 0),
            "sent": self.count("sent"),
            "delivered": self.count("delivered"),
            "failed": self.count("failed"),
            "cancelled": self.count("cancelled"),
            "expired": self.count("expired"),
            "left": max(0, self.messages - self.finished),
            "replies": self.reply_count,
            "eta_s": round(self.eta_s(now), 1),
            "cancel": self.cancel,
        }


def eta_s(
    left: int,
    finished: int,
    first_at: float | None,
    last_at: float | None,
    now: float,
    *,
    done: bool = False,
    nominal: float = NOMINAL_S_PER_MESSAGE,
) -> float:
    """Seconds until the last message is sent, at the pace measured so far."""
    if done or left <= 0:
        return 0.0
    if first_at is None or last_at is None or finished < 2 or last_at <= first_at:
        return left * nominal
    pace = (finished - 1) / (last_at - first_at)  # messages a second, all gateways together
    elapsed_since_last = max(0.0, now - last_at)
    return max(0.0, left / pace - min(elapsed_since_last, 1.0 / pace))


class BroadcastBook:
    """Every broadcast's progress, from the records of ``broadcasts`` in order."""

    def __init__(self, max_broadcasts: int = MAX_BROADCASTS) -> None:
        self.broadcasts: OrderedDict[str, BroadcastProgress] = OrderedDict()
        self.max_broadcasts = max_broadcasts
        self.bad_records = 0

    def get(self, broadcast_id: str) -> BroadcastProgress | None:
        return self.broadcasts.get(broadcast_id)

    def apply_bytes(self, value: bytes | None) -> BroadcastProgress | None:
        try:
            doc = json.loads(value or b"")
        except (ValueError, UnicodeDecodeError):
            self.bad_records += 1
            return None
        if not isinstance(doc, dict):
            self.bad_records += 1
            return None
        return self.apply(doc)

    def apply(self, doc: dict[str, Any]) -> BroadcastProgress | None:
        """One record; the broadcast it changed, or None (unreadable, or ignored)."""
        bid = doc.get("broadcast_id")
        kind = doc.get("kind")
        if not isinstance(bid, str) or not bid or len(bid) > 64:
            self.bad_records += 1
            return None
        p = self.broadcasts.get(bid)
        if p is None:
            if kind != "notice":
                return None  # a report of a broadcast already dropped (or never seen)
            p = self.broadcasts[bid] = BroadcastProgress(bid)
            while len(self.broadcasts) > self.max_broadcasts:
                self.broadcasts.popitem(last=False)
        if kind == "notice":
            if p.notice is None:  # a retried request writes the same notice again
                p.notice = doc
            return p
        if kind == "cancel":
            if p.cancel is None:
                p.cancel = {k: doc.get(k) for k in ("actor", "reason", "at")}
            return p
        if kind == "reply":
            p.reply_count += 1
            if len(p.replies) < MAX_REPLIES:
                p.replies.append({k: doc.get(k) for k in ("radio_id", "text", "at", "gateway")})
            return p
        if kind != "report":
            self.bad_records += 1
            return None
        key, status = doc.get("idempotency_key"), doc.get("status")
        if not isinstance(key, str) or len(key) > 200:
            self.bad_records += 1
            return None
        if status not in REPORT_STATUSES:
            self.bad_records += 1
            return None
        if p.frozen is not None:
            # finished: only the network's later word counts (no key sets kept any more)
            if status in ("delivered", "failed"):
                p.frozen[str(status)] += 1
            return p
        target = p._keys(str(status))
        if len(target) >= max(p.messages, 1) and key not in target:
            return p  # more keys than the notice announced: bounded, ignored
        target.add(key)
        if status in ("sent", "failed", "cancelled", "expired"):
            at = _ts(doc.get("at"))
            if at is not None:
                p.first_at = at if p.first_at is None else min(p.first_at, at)
                p.last_at = at if p.last_at is None else max(p.last_at, at)
        if p.notice is not None and p.finished >= p.messages:
            p.freeze()
        return p

    def listing(self, now: float) -> list[dict[str, Any]]:
        return [p.summary(now) for p in reversed(self.broadcasts.values()) if p.notice]


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
