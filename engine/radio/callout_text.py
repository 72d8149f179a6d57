"""The SMS text of a call-out, e.g.::

    [塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场

It must fit one 70-unit UCS2 message, so a long address is shortened first (the code
and the reply instructions are what the volunteer cannot do without); only when even a
short address does not fit is the text split into numbered parts.
"""

from __future__ import annotations

from engine.models import INCIDENT_TYPE_ZH, IncidentType, Priority
from engine.radio import ucs2
from engine.radio.sms import SINGLE_SMS_UNITS, split_text

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
    if ucs2.units(full) <= limit:
        return [full]
    if address:
        room = ucs2.units(address) - (ucs2.units(full) - limit)
        if room >= MIN_ADDRESS_UNITS:
            short = compose(shorten(address, room))
            if ucs2.units(short) <= limit:
                return [short]
    return split_text(full, limit)


def shorten(text: str, max_units: int) -> str:
    """Cut ``text`` to at most ``max_units`` UCS2 units, ending in an ellipsis."""
    if ucs2.units(text) <= max_units:
        return text
    budget = max_units - ucs2.units(ELLIPSIS)
    out: list[str] = []
    used = 0
    for char in text:
        if used + ucs2.units(char) > budget:
            break
        out.append(char)
        used += ucs2.units(char)
    return "".join(out).rstrip() + ELLIPSIS
