"""PoC (push-to-talk over cellular) handset dialects.

Vendors put PoC behind their own AT extensions, so the gateway talks to a
:class:`PocDialect`: it builds commands and reads reports. :class:`HexOpcodeDialect` is
the ``AT+POC=<hex opcode><hex params>`` family of DESIGN.md §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.radio.at_commands import Command


@dataclass(frozen=True)
class TalkGranted:
    """The floor is ours: speak now."""


@dataclass(frozen=True)
class TalkDenied:
    raw: str


@dataclass(frozen=True)
class LoggedIn:
    pass


@dataclass(frozen=True)
class NetworkUp:
    pass


@dataclass(frozen=True)
class NetworkDown:
    """The handset lost its data network: mark the radio offline."""


@dataclass(frozen=True)
class HandsetPresence:
    """A handset (PoC user) came onto or dropped off the PoC network."""

    user_id: int
    online: bool


@dataclass(frozen=True)
class HandsetPosition:
    """A handset's GPS fix, as the PoC platform relays it (degrees, WGS84)."""

    user_id: int
    lat: float
    lon: float


@dataclass(frozen=True)
class CallResult:
    """The outcome of a single call: the handset answered (it has the call) or not."""

    user_id: int
    reached: bool


@dataclass(frozen=True)
class UnknownPocReport:
    """A report this dialect does not know, kept for logs rather than dropped."""

    raw: str


PocEvent = (
    TalkGranted
    | TalkDenied
    | LoggedIn
    | NetworkUp
    | NetworkDown
    | HandsetPresence
    | HandsetPosition
    | CallResult
    | UnknownPocReport
)


class PocDialect(Protocol):
    name: str

    @property
    def report_prefix(self) -> str:
        """The URC prefix of this dialect's reports, e.g. ``+POC:``."""
        ...

    def open(self) -> Command: ...
    def login(self) -> Command: ...
    def join_group(self, group_id: int) -> Command: ...
    def single_call(self, user_id: int) -> Command: ...
    def ptt_press(self) -> Command: ...
    def ptt_release(self) -> Command: ...
    def parse_report(self, line: str) -> PocEvent | None:
        """The event of a report line, or None when the line is not this dialect's."""
        ...


class HexOpcodeDialect:
    """``AT+POC=`` + opcode + params, all hex; ids as 8 hex digits (32-bit)."""

    name = "poc-hex"
    report_prefix = "+POC:"

    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = timeout

    def _cmd(self, params: str, label: str) -> Command:
        # response_prefix "": +POC: lines are reports (URCs) even while a command is open.
        return Command(
            f"AT+POC={params}", timeout=self._timeout, response_prefix="", label=f"poc {label}"
        )

    def open(self) -> Command:
        return self._cmd("005200", "open")

    def login(self) -> Command:
        return self._cmd("030000", "login")

    def join_group(self, group_id: int) -> Command:
        return self._cmd(f"092200{_id_hex(group_id)}", f"join group {group_id}")

    def single_call(self, user_id: int) -> Command:
        return self._cmd(f"0A0000{_id_hex(user_id)}", f"single call {user_id}")

    def ptt_press(self) -> Command:
        return self._cmd("0B0000", "ptt press")

    def ptt_release(self) -> Command:
        return self._cmd("0C0000", "ptt release")

    def parse_report(self, line: str) -> PocEvent | None:
        if not line.startswith(self.report_prefix):
            return None
        raw = line[len(self.report_prefix) :].strip().lower()
        if raw.startswith("0b"):
            return TalkGranted() if raw == "0b000000" else TalkDenied(raw)
        if raw == "8202":
            return LoggedIn()
        if raw == "970001":
            return NetworkUp()
        if raw == "970000":
            return NetworkDown()
        if raw.startswith("98") and len(raw) == 12 and _hex(raw[2:]):
            # presence: 98 <user id, 8 hex> <01 online | 00 offline>
            return HandsetPresence(int(raw[2:10], 16), raw[10:] == "01")
        if raw.startswith("99") and len(raw) == 26 and _hex(raw[2:]):
            # position: 99 <user id> <lat x 1e6> <lon x 1e6>, each 8 hex (32-bit signed)
            lat, lon = _signed(raw[10:18]) / 1e6, _signed(raw[18:26]) / 1e6
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                return HandsetPosition(int(raw[2:10], 16), lat, lon)
            return UnknownPocReport(raw)
        if raw.startswith("0a") and len(raw) == 12 and _hex(raw[2:]):
            # single-call result: 0a <00 reached | else failed> <user id, 8 hex>
            return CallResult(int(raw[4:], 16), raw[2:4] == "00")
        return UnknownPocReport(raw)


def position_report(user_id: int, lat: float, lon: float) -> str:
    """The report the hex dialect reads as a :class:`HandsetPosition`."""
    return f"99{user_id:08X}{round(lat * 1e6) & 0xFFFFFFFF:08X}{round(lon * 1e6) & 0xFFFFFFFF:08X}"


def _signed(hex8: str) -> int:
    value = int(hex8, 16)
    return value - (1 << 32) if value >= 1 << 31 else value


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _id_hex(value: int) -> str:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"PoC id out of 32-bit range: {value}")
    return f"{value:08X}"


DIALECTS: dict[str, type[HexOpcodeDialect]] = {HexOpcodeDialect.name: HexOpcodeDialect}
"""Dialects by name, for ``--dialect``; a new vendor adds its class here."""
