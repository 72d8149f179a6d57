"""SMS in text mode with UCS2 (TS 27.005 §3): init, AT+CMGS, +CMGS and +CMT parsing.

With ``AT+CSCS="UCS2"`` every string parameter and the message text travel as UCS2
hex, the destination number included. ``AT+CSMP=17,167,0,8`` sets data coding 8 (UCS2)
so the network gets 16-bit text: 70 code units per single message.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engine.radio import ucs2
from engine.radio.at_commands import CTRL_Z, Command
from engine.radio.at_events import Urc
from engine.radio.directory import mask_number
from engine.radio.errors import MessageFormatError
from engine.wording import SINGLE_SMS_UNITS, split_text

__all__ = ["SINGLE_SMS_UNITS", "split_text"]  # split_text lives in engine.wording now

SEND_TIMEOUT = 60.0  # TS 27.005 allows minutes; real modems answer within ~10 s

# Settings a modem forgets when it restarts; replayed in order after every restart.
SMS_INIT_LINES: tuple[str, ...] = (
    "ATE0",
    "AT+CMEE=1",
    "AT+CMGF=1",
    'AT+CSCS="UCS2"',
    "AT+CSMP=49,167,0,8",  # 49: as 17, plus a status report requested (TP-SRR)
    "AT+CNMI=2,1,0,1,0",  # replies stored on the module (+CMTI), status reports as +CDS
)
"""Replies are kept on the module and announced (``+CMTI: "SM",<index>``); the gateway
reads each with ``AT+CMGR`` and deletes it with ``AT+CMGD`` only once Kafka has the Ack,
so a gateway that dies in between loses none (a module left in ``AT+CNMI=2,2`` mode still
works: its ``+CMT`` replies are read off the line). Status reports (``+CDS``) tell a
handset that received a text (``delivered``) from a module that merely took it."""


def read_command(index: int) -> Command:
    return Command(f"AT+CMGR={index}", timeout=5.0, label=f"CMGR {index}")


def delete_command(index: int) -> Command:
    return Command(f"AT+CMGD={index}", timeout=5.0, label=f"CMGD {index}")


def list_command() -> Command:
    """``AT+CMGL="ALL"`` (the status name in UCS2 hex, as the charset wants)."""
    return Command(f'AT+CMGL="{ucs2.encode("ALL")}"', timeout=10.0, label="CMGL ALL")


@dataclass(frozen=True)
class StoredSms:
    index: int
    sender: str
    text: str
    sent_at: datetime | None
    scts: str


def parse_read(index: int, lines: tuple[str, ...]) -> StoredSms:
    """The lines of a completed ``AT+CMGR=<index>``:
    ``+CMGR: <stat>,"<oa>",[<alpha>],"<scts>"`` and the text."""
    header = next((i for i, line in enumerate(lines) if line.startswith("+CMGR:")), None)
    if header is None:
        raise MessageFormatError(f"no +CMGR header in {lines!r}")
    fields = next(csv.reader([lines[header][len("+CMGR:") :].strip()], skipinitialspace=True))
    return _stored(index, fields[1:], lines[header + 1 : header + 2])


def parse_list(lines: tuple[str, ...]) -> list[StoredSms]:
    """The lines of a completed ``AT+CMGL``: ``+CMGL: <index>,<stat>,"<oa>",...`` each
    followed by its text line."""
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("+CMGL:"):
            continue
        fields = next(csv.reader([line[len("+CMGL:") :].strip()], skipinitialspace=True))
        try:
            index = int(fields[0])
        except (ValueError, IndexError):
            continue
        body = lines[i + 1 : i + 2]
        if body and body[0].startswith("+CMGL:"):
            body = ()
        out.append(_stored(index, fields[2:], body))
    return out


def _stored(index: int, fields: list[str], body: tuple[str, ...]) -> StoredSms:
    if not fields or not fields[0]:
        raise MessageFormatError(f"stored message {index} without sender")
    sender = _maybe_ucs2(fields[0])
    scts = fields[2] if len(fields) > 2 else ""
    text = _maybe_ucs2(body[0]) if body else ""
    return StoredSms(index, sender, text, parse_timestamp(scts), scts)


def init_commands(timeout: float = 5.0) -> tuple[Command, ...]:
    return tuple(Command(line, timeout=timeout, label=f"init {line}") for line in SMS_INIT_LINES)


def send_command(number: str, text: str, timeout: float = SEND_TIMEOUT) -> Command:
    """``AT+CMGS="<number, UCS2 hex>"``, then after ``> `` the text in UCS2 hex and Ctrl-Z."""
    if ucs2.units(text) > SINGLE_SMS_UNITS:
        raise ValueError(f"one SMS holds {SINGLE_SMS_UNITS} UCS2 units; use split_text first")
    if not _NUMBER.fullmatch(number):
        raise ValueError(f"not a phone number: {number!r}")
    return Command(
        f'AT+CMGS="{ucs2.encode(number)}"',
        timeout=timeout,
        payload=ucs2.encode(text).encode("ascii") + CTRL_Z,
        label=f"CMGS {mask_number(number)}",  # labels reach logs: no phone numbers there
    )


def parse_message_reference(lines: tuple[str, ...]) -> int:
    """The ``<mr>`` of ``+CMGS: <mr>`` among a completed AT+CMGS's lines."""
    for line in lines:
        if line.startswith("+CMGS:"):
            value = line[len("+CMGS:") :].split(",")[0].strip()
            if value.isdigit():
                return int(value)
    raise MessageFormatError(f"no +CMGS: <mr> in {lines!r}")


@dataclass(frozen=True)
class IncomingSms:
    sender: str
    text: str
    sent_at: datetime | None


def parse_incoming(urc: Urc) -> IncomingSms:
    """``+CMT: "<oa>",[<alpha>],"<scts>"[,...]`` plus its text line, both maybe UCS2."""
    if urc.name != "+CMT" or urc.body is None:
        raise MessageFormatError(f"not a +CMT with text: {urc.line!r}")
    fields = next(csv.reader([urc.line[len("+CMT:") :].strip()], skipinitialspace=True))
    if not fields or not fields[0]:
        raise MessageFormatError(f"+CMT without sender: {urc.line!r}")
    sender = _maybe_ucs2(fields[0])
    if not _NUMBER.fullmatch(sender):
        raise MessageFormatError(f"+CMT sender is not a number: {sender!r}")
    sent_at = parse_timestamp(fields[2]) if len(fields) > 2 else None
    return IncomingSms(sender, _maybe_ucs2(urc.body), sent_at)


@dataclass(frozen=True)
class StatusReport:
    """A delivery report (``AT+CSMP`` with status reports on): message reference and
    TP-Status (0x00-0x1F: delivered; 0x20-0x3F: still trying; 0x40 and up: failed)."""

    reference: int
    status: int
    recipient: str | None

    @property
    def delivered(self) -> bool:
        return self.status < 0x20


def parse_status_report(urc: Urc) -> StatusReport:
    """``+CDS: <fo>,<mr>,["<ra>"],[<tora>],"<scts>","<dt>",<st>`` (text mode)."""
    if urc.name != "+CDS":
        raise MessageFormatError(f"not a +CDS: {urc.line!r}")
    fields = next(csv.reader([urc.line[len("+CDS:") :].strip()], skipinitialspace=True), [])
    if len(fields) < 7:
        raise MessageFormatError(f"+CDS with {len(fields)} fields, 7 expected: {urc.line!r}")
    try:
        reference, status = int(fields[1]), int(fields[-1])
    except ValueError:
        raise MessageFormatError(f"+CDS reference or status not a number: {urc.line!r}") from None
    if not (0 <= reference <= 255 and 0 <= status <= 255):
        raise MessageFormatError(f"+CDS reference or status out of range: {urc.line!r}")
    recipient = _maybe_ucs2(fields[2]) if fields[2] else None
    return StatusReport(reference, status, recipient)


def parse_timestamp(scts: str) -> datetime | None:
    """``yy/MM/dd,hh:mm:ss±zz`` with ``zz`` in quarter hours; None when malformed."""
    m = _SCTS.fullmatch(scts.strip())
    if not m:
        return None
    yy, mo, dd, hh, mi, ss, sign, qh = m.groups()
    offset = timedelta(minutes=15 * int(qh)) * (-1 if sign == "-" else 1)
    try:
        return datetime(
            2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss), tzinfo=timezone(offset)
        )
    except ValueError:
        return None


def _maybe_ucs2(text: str) -> str:
    # In UCS2 mode everything is hex; a modem left in GSM mode sends plain text.
    if ucs2.looks_like_ucs2(text):
        try:
            return ucs2.decode(text)
        except MessageFormatError:
            return text
    return text


_NUMBER = re.compile(r"\+?[0-9*#]{3,20}")
_SCTS = re.compile(r"(\d\d)/(\d\d)/(\d\d),(\d\d):(\d\d):(\d\d)([+-])(\d\d)")
