"""Whether a handset reply may become an Ack (pure: the caller passes the clock).

A reply is accepted only when all hold: the sender's number belongs to a known radio,
the text parses (``1 K7Q2``), the code is the code of an incident this gateway called
out recently (an "open" one), and this radio was called for that incident. Anything
else is rejected with a bounded reason, for the metric and the log, and never acked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from engine.models import AckKind
from engine.radio.directory import RadioDirectory
from engine.radio.replies import Rejected, incident_code, parse_reply

OPEN_FOR = 24 * 3600.0
"""How long after its last call-out an incident takes replies (seconds)."""


class ReplyRejection(StrEnum):
    UNKNOWN_NUMBER = "unknown_number"
    MALFORMED = "malformed"  # the +CMT itself could not be read
    EMPTY = "empty"
    NO_ACTION = "no_action"
    UNKNOWN_ACTION = "unknown_action"
    NO_CODE = "no_code"
    BAD_CODE = "bad_code"
    UNKNOWN_CODE = "unknown_code"  # no open incident has this code
    NOT_CALLED = "not_called"  # open incident, but this radio was not called for it


@dataclass(frozen=True)
class AcceptedReply:
    incident_id: str
    radio_id: str
    kind: AckKind
    note: str = ""


@dataclass(frozen=True)
class RejectedReply:
    reason: ReplyRejection
    sender: str
    text: str


@dataclass
class _Called:
    radios: set[str] = field(default_factory=set)
    last: float = 0.0


class CalledBook:
    """Which radios were called for which open incident, by the incident's reply code."""

    def __init__(self, open_for: float = OPEN_FOR) -> None:
        self._open_for = open_for
        self._incidents: dict[str, _Called] = {}

    def called(self, incident_id: str, radio_id: str, at: float) -> None:
        entry = self._incidents.setdefault(incident_id, _Called())
        entry.radios.add(radio_id)
        entry.last = max(entry.last, at)

    def close(self, incident_id: str) -> None:
        self._incidents.pop(incident_id, None)

    def check(
        self, sender: str, text: str, directory: RadioDirectory, now: float
    ) -> AcceptedReply | RejectedReply:
        radio_id = directory.radio_of_number(sender)
        if radio_id is None:
            return RejectedReply(ReplyRejection.UNKNOWN_NUMBER, sender, text)
        parsed = parse_reply(text)
        if isinstance(parsed, Rejected):
            return RejectedReply(ReplyRejection(parsed.reason.value), sender, text)
        self._expire(now)
        with_code = [i for i in self._incidents if incident_code(i) == parsed.code]
        if not with_code:
            return RejectedReply(ReplyRejection.UNKNOWN_CODE, sender, text)
        mine = [i for i in with_code if radio_id in self._incidents[i].radios]
        if not mine:
            return RejectedReply(ReplyRejection.NOT_CALLED, sender, text)
        # Two open incidents sharing a code and this radio: the latest call-out is meant.
        incident_id = max(mine, key=lambda i: self._incidents[i].last)
        return AcceptedReply(incident_id, radio_id, parsed.kind, parsed.note)

    def _expire(self, now: float) -> None:
        cutoff = now - self._open_for
        for incident_id in [i for i, e in self._incidents.items() if e.last < cutoff]:
            del self._incidents[incident_id]
