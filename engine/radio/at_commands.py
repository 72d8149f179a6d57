"""AT commands and final result codes (3GPP TS 27.007 §4, TS 27.005 §3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

CTRL_Z = b"\x1a"
ESC = b"\x1b"


@dataclass(frozen=True, eq=False)
class Command:
    """One command line, without the trailing CR.

    ``payload`` is written after the ``> `` prompt (AT+CMGS) and must end with Ctrl-Z.
    ``response_prefix`` marks the command's own information lines (``+CMGS:`` for
    AT+CMGS) so they are not taken for unsolicited codes of the same name; None derives
    it from the command, ``""`` means the command has none (``+POC:`` stays a URC).
    Compared by identity: two identical lines submitted twice are two commands.
    """

    line: str
    timeout: float = 5.0
    payload: bytes | None = None
    response_prefix: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not self.line.isascii() or "\r" in self.line or "\n" in self.line:
            raise ValueError(f"AT command must be one ASCII line: {self.line!r}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.payload is not None and not self.payload.endswith(CTRL_Z):
            raise ValueError("an AT+CMGS payload must end with Ctrl-Z (0x1A)")

    @property
    def wants_prompt(self) -> bool:
        return self.payload is not None

    @property
    def info_prefix(self) -> str:
        if self.response_prefix is not None:
            return self.response_prefix
        match = _NAME.match(self.line)
        return f"{match.group(1).upper()}:" if match else ""

    def encode(self) -> bytes:
        return self.line.encode("ascii") + b"\r"

    def __repr__(self) -> str:
        return f"Command({self.label or self.line!r})"


_NAME = re.compile(r"(?i)^AT([+^$%#][A-Z0-9]+)")


class ResultKind(StrEnum):
    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"


@dataclass(frozen=True)
class FinalResult:
    kind: ResultKind
    code: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is ResultKind.OK

    def __str__(self) -> str:
        if self.kind in (ResultKind.OK, ResultKind.ERROR):
            return self.kind.value
        return f"{self.kind.value}: {self.text}"


def parse_final(line: str) -> FinalResult | None:
    """``OK``, ``ERROR``, ``+CME ERROR: 10``, ``+CMS ERROR: 500`` (numeric or verbose)."""
    if line == "OK":
        return FinalResult(ResultKind.OK)
    if line == "ERROR":
        return FinalResult(ResultKind.ERROR)
    for kind in (ResultKind.CME_ERROR, ResultKind.CMS_ERROR):
        if line.startswith(kind.value + ":"):
            text = line[len(kind.value) + 1 :].strip()
            return FinalResult(kind, int(text) if text.isdigit() else None, text)
    return None
