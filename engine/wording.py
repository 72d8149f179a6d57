"""What a call-out says and how a volunteer answers it, in one place for the rules
(which compose call-outs) and the radio gateway (which sends them and reads replies).

- the SMS text of a call-out (``[塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场``),
  shortened to one 70-unit UCS2 message when it can be, split into parts when not;
- the stand-down and manual-dispatch texts, and the spoken (PoC) wording;
- reply parsing: ``1 K7Q2`` accept, ``2 K7Q2`` cannot, ``3 K7Q2`` on scene, typed on
  phone keypads and Chinese IMEs (full-width digits, ideographic spaces, ``#``).

No I/O and nothing of ``engine.radio`` here: ``engine.rules`` imports this module, and
``engine.radio.callout_text`` / ``engine.radio.replies`` re-export it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from engine.models import INCIDENT_TYPE_ZH, AckKind, IncidentType, Priority

SINGLE_SMS_UNITS = 70


def units(text: str) -> int:
    """UTF-16 code units: what counts against the 70-unit single-SMS limit."""
    return len(text.encode("utf-16-be")) // 2


TAG = "塘厦义警"
REPLY_HINT = "回1接警 2不能 3到场"
MIN_ADDRESS_UNITS = 8  # below this an address stops being findable
ELLIPSIS = "…"


def format_distance(metres: float) -> str:
    if metres < 1000:
        return f"{round(metres)}米"
    return f"{metres / 1000:.1f}公里"


def format_callout(
    *,
    priority: Priority,
    incident_type: IncidentType,
    code: str,
    address: str | None = None,
    distance_m: float | None = None,
    extra: str | None = None,
    tag: str = TAG,
    limit: int = SINGLE_SMS_UNITS,
) -> list[str]:
    """The message(s) to send; one element whenever the text can be made to fit."""

    def compose(addr: str | None) -> str:
        pieces = [
            f"[{tag}]{priority.value}",
            INCIDENT_TYPE_ZH[incident_type],
            f"#{code}",
            addr,
            format_distance(distance_m) if distance_m is not None else None,
            extra,
            REPLY_HINT,
        ]
        return " ".join(p for p in pieces if p)

    address = " ".join(address.split()) if address else None
    full = compose(address)
    if units(full) <= limit:
        return [full]
    if address:
        room = units(address) - (units(full) - limit)
        if room >= MIN_ADDRESS_UNITS:
            short = compose(shorten(address, room))
            if units(short) <= limit:
                return [short]
    return split_text(full, limit)


def shorten(text: str, max_units: int) -> str:
    """Cut ``text`` to at most ``max_units`` UCS2 units, ending in an ellipsis."""
    if units(text) <= max_units:
        return text
    budget = max_units - units(ELLIPSIS)
    out: list[str] = []
    used = 0
    for char in text:
        if used + units(char) > budget:
            break
        out.append(char)
        used += units(char)
    return "".join(out).rstrip() + ELLIPSIS


def stand_down_text(code: str, *, cancelled: bool) -> str:
    """The last message to everyone paged for an incident that was cancelled or closed."""
    return (
        f"[{TAG}] #{code} 警情已取消，无需前往，谢谢"
        if cancelled
        else f"[{TAG}] #{code} 警情已处置完毕，谢谢支援"
    )


def manual_dispatch_text(
    priority: Priority, code: str, incident_type: IncidentType, where: str
) -> str:
    """To the command centre when the engine could not decide an incident."""
    return f"[{TAG}]{priority.value} 引擎故障，请人工派警 #{code} {incident_type.value} {where}"


def spoken_text(text: str) -> str:
    """A call-out as read out over PoC voice: the bracketed tag and the ``#`` of the
    code are not spoken, the reply hint is (the listener answers by SMS)."""
    return text.replace(f"[{TAG}]", f"{TAG} ").replace("#", "代码 ")


def split_text(text: str, limit: int = SINGLE_SMS_UNITS) -> list[str]:
    """One message if it fits, else parts prefixed ``(i/n)``, each within ``limit`` units.

    The prefix counts against the limit. Surrogate pairs are never cut, and a part ends
    after a space when one falls in its second half so words stay whole. Joining the
    parts without their prefixes gives back ``text``.
    """
    if units(text) <= limit:
        return [text]
    n = 2
    while True:
        budget = limit - units(f"({n}/{n})")
        if budget < 2:  # room for at least one surrogate pair
            raise ValueError(f"limit {limit} leaves no room for text after the part prefix")
        bodies = _pack(text, budget)
        if len(bodies) <= n and len(str(len(bodies))) == len(str(n)):
            total = len(bodies)
            return [f"({i}/{total}){body}" for i, body in enumerate(bodies, 1)]
        n = len(bodies)


def _pack(text: str, budget: int) -> list[str]:
    parts: list[str] = []
    start = 0
    while start < len(text):
        used = 0
        end = start
        while end < len(text) and used + units(text[end]) <= budget:
            used += units(text[end])
            end += 1
        if end < len(text):
            space = text.rfind(" ", start, end)
            if space >= start + (end - start) // 2:
                end = space + 1
        parts.append(text[start:end])
        start = end
    return parts


# --- replies ----------------------------------------------------------------------
CODE_ALPHABET = frozenset("23456789ABCDEFGHJKMNPQRSTUVWXYZ")  # engine.models._ID_ALPHABET
CODE_LENGTH = 4

ACTIONS: dict[str, AckKind] = {"1": AckKind.ACCEPT, "2": AckKind.DECLINE, "3": AckKind.ON_SCENE}


class RejectReason(StrEnum):
    EMPTY = "empty"
    NO_ACTION = "no_action"  # does not start with a digit
    UNKNOWN_ACTION = "unknown_action"  # a digit other than 1, 2, 3
    NO_CODE = "no_code"
    BAD_CODE = "bad_code"  # wrong length or characters outside the id alphabet


@dataclass(frozen=True)
class Reply:
    kind: AckKind
    code: str
    note: str = ""


@dataclass(frozen=True)
class Rejected:
    reason: RejectReason
    text: str


def incident_code(incident_id: str) -> str:
    """The four characters a volunteer types back: the tail of the incident id."""
    return incident_id[-CODE_LENGTH:].upper()


def parse_reply(text: str) -> Reply | Rejected:
    normal = unicodedata.normalize("NFKC", text).strip().upper()
    if not normal:
        return Rejected(RejectReason.EMPTY, text)
    m = _REPLY.match(normal)
    if m is None:
        m = _CODE_FIRST.match(normal)  # "K7Q2 1": code then action
        if m is None:
            return Rejected(RejectReason.NO_ACTION, text)
        code, action, note = m.group("code"), m.group("action"), m.group("note")
    else:
        action, code, note = m.group("action"), m.group("code"), m.group("note")
    if action not in ACTIONS:
        return Rejected(RejectReason.UNKNOWN_ACTION, text)
    if not code:
        return Rejected(RejectReason.NO_CODE, text)
    if len(code) != CODE_LENGTH or not set(code) <= CODE_ALPHABET:
        return Rejected(RejectReason.BAD_CODE, text)
    return Reply(ACTIONS[action], code, note.strip(" ,.;:，。；：、"))


_REPLY = re.compile(r"(?P<action>\d)[\s#,.:;，。：；、]*(?P<code>[A-Z0-9]*)(?P<note>.*)", re.S)
_CODE_FIRST = re.compile(r"#?(?P<code>[A-Z0-9]{4})\s+(?P<action>\d)\b(?P<note>.*)", re.S)
