"""Handset replies (``1 K7Q2`` accept, ``2 K7Q2`` cannot, ``3 K7Q2`` on scene): moved to
:mod:`engine.wording` (the rules and the radio share the codes); re-exported here."""

from engine.wording import (
    ACTIONS,
    CODE_ALPHABET,
    CODE_LENGTH,
    Rejected,
    RejectReason,
    Reply,
    incident_code,
    parse_reply,
)

__all__ = [
    "ACTIONS",
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "RejectReason",
    "Rejected",
    "Reply",
    "incident_code",
    "parse_reply",
]
