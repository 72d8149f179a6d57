"""Whether a handset reply may become an Ack (pure: the caller passes the clock).

Every recipient of a call-out gets its own reply code (:mod:`engine.radio.reply_codes`),
so a reply proves who answers. A reply is accepted only when all hold: the number is
not sending faster than a sane rate, it belongs to a known radio (or to an allow-listed
number that was paged), the text parses (``1 K7Q2``), the code is one issued to *this*
number, the code is still open (not expired), its incident was not stood down, and the
same answer with the same code was not accepted already. Anything else is rejected with
a bounded reason (metric, audit topic, log) and never acked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from engine.models import AckKind
from engine.radio.directory import RadioDirectory, normalise_number
from engine.radio.replies import Rejected, parse_reply

OPEN_FOR = 24 * 3600.0
"""How long after its page a reply code is accepted (seconds)."""
KEEP_FOR = 31 * 24 * 3600.0
"""How long an issued code is remembered, so a late reply is told "expired"."""
RATE = 6
RATE_WINDOW = 60.0
_NUMBERS_TRACKED = 10_000  # senders whose recent reply times are kept (oldest dropped)


class ReplyRejection(StrEnum):
    THROTTLED = "throttled"  # more replies from one number than a person types
    UNKNOWN_NUMBER = "unknown_number"
    MALFORMED = "malformed"  # the +CMT itself could not be read
    EMPTY = "empty"
    NO_ACTION = "no_action"
    UNKNOWN_ACTION = "unknown_action"
    NO_CODE = "no_code"
    BAD_CODE = "bad_code"
    NOT_CALLED = "not_called"  # a known number, but not paged (recently)
    OTHER_RECIPIENT = "other_recipient"  # a code issued to someone else
    UNKNOWN_CODE = "unknown_code"  # no code like it was issued
    EXPIRED = "expired"
    CLOSED = "closed"  # the incident was stood down (cancelled or closed)
    REPEAT = "repeat"  # the same answer with the same code, again


@dataclass(frozen=True)
class AcceptedReply:
    incident_id: str
    radio_id: str
    kind: AckKind
    note: str = ""
    stage: int = 0


@dataclass(frozen=True)
class RejectedReply:
    reason: ReplyRejection
    sender: str
    text: str
    incident_id: str | None = None
    radio_id: str | None = None


@dataclass(frozen=True)
class Issued:
    incident_id: str
    stage: int
    at: float


@dataclass
class _Radio:
    codes: dict[str, Issued] = field(default_factory=dict)
    answered: set[tuple[str, AckKind]] = field(default_factory=set)


class ReplyBook:
    """The codes issued per radio, stood-down incidents, and recent reply rates."""

    def __init__(
        self,
        *,
        open_for: float = OPEN_FOR,
        keep_for: float = KEEP_FOR,
        rate: int = RATE,
        rate_window: float = RATE_WINDOW,
    ) -> None:
        self._open_for = open_for
        self._keep_for = max(keep_for, open_for)
        self._rate = rate
        self._rate_window = rate_window
        self._radios: dict[str, _Radio] = {}
        self._holders: dict[str, set[str]] = {}  # code -> radios it was issued to
        self._numbers: dict[str, str] = {}  # allow-listed number -> its address
        self._closed: dict[str, float] = {}  # incident -> when stood down
        self._recent: dict[str, deque[float]] = {}
        self._next_expiry = 0.0

    def issued(
        self, code: str, incident_id: str, stage: int, radio_id: str, at: float,
        number: str | None = None,
    ) -> None:  # fmt: skip
        """``code`` went to ``radio_id`` (at ``number`` when it is outside the directory)."""
        radio = self._radios.setdefault(radio_id, _Radio())
        old = radio.codes.get(code)
        if old is None or old.at < at:
            radio.codes[code] = Issued(incident_id, stage, at)
        self._holders.setdefault(code, set()).add(radio_id)
        if number:
            self._numbers[normalise_number(number)] = radio_id

    def close(self, incident_id: str, at: float) -> None:
        """The incident was cancelled or closed: its codes take no more replies."""
        self._closed.setdefault(incident_id, at)

    def is_closed(self, incident_id: str) -> bool:
        return incident_id in self._closed

    def check(
        self, sender: str, text: str, directory: RadioDirectory, now: float
    ) -> AcceptedReply | RejectedReply:
        number = normalise_number(sender)
        if self._throttled(number, now):
            return RejectedReply(ReplyRejection.THROTTLED, sender, text)
        radio_id = directory.radio_of_number(number) or self._numbers.get(number)
        if radio_id is None:
            return RejectedReply(ReplyRejection.UNKNOWN_NUMBER, sender, text)
        parsed = parse_reply(text)
        if isinstance(parsed, Rejected):
            reason = ReplyRejection(parsed.reason.value)
            return RejectedReply(reason, sender, text, radio_id=radio_id)
        self._expire(now)
        radio = self._radios.get(radio_id)
        issued = radio.codes.get(parsed.code) if radio is not None else None
        if issued is None:
            if parsed.code in self._holders:
                reason = ReplyRejection.OTHER_RECIPIENT
            elif radio is None:
                reason = ReplyRejection.NOT_CALLED
            else:
                reason = ReplyRejection.UNKNOWN_CODE
            return RejectedReply(reason, sender, text, radio_id=radio_id)
        assert radio is not None
        incident = issued.incident_id

        def rejected(reason: ReplyRejection) -> RejectedReply:
            return RejectedReply(reason, sender, text, incident_id=incident, radio_id=radio_id)

        if incident in self._closed:
            return rejected(ReplyRejection.CLOSED)
        if now - issued.at > self._open_for:
            return rejected(ReplyRejection.EXPIRED)
        if (parsed.code, parsed.kind) in radio.answered:
            return rejected(ReplyRejection.REPEAT)
        radio.answered.add((parsed.code, parsed.kind))
        return AcceptedReply(incident, radio_id, parsed.kind, parsed.note, issued.stage)

    def _throttled(self, number: str, now: float) -> bool:
        times = self._recent.pop(number, None) or deque()
        self._recent[number] = times  # most recent sender last
        while times and times[0] <= now - self._rate_window:
            times.popleft()
        times.append(now)
        while len(self._recent) > _NUMBERS_TRACKED:
            del self._recent[next(iter(self._recent))]
        return len(times) > self._rate

    def _expire(self, now: float) -> None:
        if now < self._next_expiry:
            return
        self._next_expiry = now + 60.0
        cutoff = now - self._keep_for
        for radio_id, radio in list(self._radios.items()):
            for code in [c for c, i in radio.codes.items() if i.at < cutoff]:
                del radio.codes[code]
                holders = self._holders.get(code)
                if holders is not None:
                    holders.discard(radio_id)
                    if not holders:
                        del self._holders[code]
                radio.answered = {a for a in radio.answered if a[0] != code}
            if not radio.codes:
                del self._radios[radio_id]
        for incident in [i for i, at in self._closed.items() if at < cutoff]:
            del self._closed[incident]
