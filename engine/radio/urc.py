"""Which lines are unsolicited result codes, and which announce a modem (re)boot."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_URCS: Mapping[str, int] = {
    # prefix -> number of text lines that follow the header and belong to it
    "+CMT:": 1,  # SMS delivered straight to the TE (AT+CNMI=2,2): header, then the text
    "+CBM:": 1,
    "+CMTI:": 0,
    "+CDS:": 0,  # text mode status report: one line
    "+CDSI:": 0,
    "RING": 0,
    "+CRING:": 0,
    "+CLIP:": 0,
    "+CREG:": 0,
    "+CGREG:": 0,
    "+CEREG:": 0,
    "+CPIN:": 0,
    "+CFUN:": 0,
    "+CUSD:": 0,
    "+CSQN:": 0,
    "+QIND:": 0,
    "+POC:": 0,
    "Call Ready": 0,
    "SMS Ready": 0,
    "+PBREADY": 0,
}

DEFAULT_BOOT_BANNERS: tuple[str, ...] = ("RDY", "START", "^SYSSTART", "+SYSSTART")
"""Lines a module prints only when it has just (re)started."""


class UrcTable:
    def __init__(
        self,
        urcs: Mapping[str, int] = DEFAULT_URCS,
        boot_banners: tuple[str, ...] = DEFAULT_BOOT_BANNERS,
    ) -> None:
        # Longest prefix first, so "+CMTI:" never matches as "+CMT".
        self._urcs = sorted(urcs.items(), key=lambda item: -len(item[0]))
        self._banners = frozenset(boot_banners)

    def match(self, line: str) -> tuple[str, int] | None:
        """(name, body line count) when ``line`` is an unsolicited code."""
        for prefix, body_lines in self._urcs:
            if line.startswith(prefix):
                return prefix.rstrip(":"), body_lines
        return None

    def is_boot_banner(self, line: str) -> bool:
        return line.strip() in self._banners
