"""Handset replies to a call-out: ``1 K7Q2`` accept, ``2 K7Q2`` cannot, ``3 K7Q2`` on scene.

Typed on phone keypads and Chinese IMEs, so full-width digits and letters, ideographic
spaces, ``#`` before the code, lower case and trailing words are all tolerated. Only
syntax is checked here; whether the number, code and radio belong to an open call-out
is the gateway's question.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from engine.models import AckKind

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
