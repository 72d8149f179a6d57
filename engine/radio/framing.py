"""Split the modem's byte stream into lines and the SMS ``> `` prompt.

Modems end lines with CR, LF or both and print the SMS prompt as ``> `` with no line
end at all, so the framer only reports a prompt when its caller expects one. Bytes that
cannot be part of an AT line (binary noise, a baud-rate mismatch) are split off as
noise; the next line boundary resynchronises. Nothing here knows about time or I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 4096
"""A longer run without a line end is noise, never a line (no AT response is this long)."""

# Echoed Ctrl-Z / ESC after an SMS body: expected control bytes, not noise.
_QUIET_CONTROLS = frozenset(b"\x1a\x1b")
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09}


@dataclass(frozen=True)
class Line:
    """One line of text; ``noise`` holds non-printable bytes removed from it."""

    text: str
    noise: bytes = b""


@dataclass(frozen=True)
class Prompt:
    """The ``> `` prompt of AT+CMGS."""


@dataclass(frozen=True)
class Overflow:
    """A run of bytes too long to be a line, discarded whole."""

    noise: bytes


Token = Line | Prompt | Overflow


class LineFramer:
    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._discarding = False  # inside an overlong run: drop up to the next line end

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()
        self._discarding = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_token(self, *, prompt_expected: bool) -> Token | None:
        """The next complete token, or None when more bytes are needed."""
        buf = self._buf
        while True:
            start = 0
            while start < len(buf) and buf[start] in b"\r\n":
                start += 1
            if start:
                del buf[:start]
                # A line end closes any overlong run: that run has already been reported.
                self._discarding = False
            if not buf:
                return None
            if prompt_expected and not self._discarding and buf[0] == 0x3E:  # ">"
                if len(buf) < 2:
                    return None
                if buf[1] == 0x20:
                    del buf[:2]
                    return Prompt()
            end = _line_end(buf)
            if end < 0:
                if len(buf) > self._max_line:
                    noise = bytes(buf)
                    buf.clear()
                    self._discarding = True
                    return Overflow(noise)
                return None
            raw = bytes(buf[:end])
            del buf[: end + 1]
            if self._discarding or len(raw) > self._max_line:
                self._discarding = False
                return Overflow(raw)
            if all(b in _PRINTABLE for b in raw):
                return Line(raw.decode("ascii"))
            text = bytes(b for b in raw if b in _PRINTABLE).decode("ascii")
            noise = bytes(b for b in raw if b not in _PRINTABLE and b not in _QUIET_CONTROLS)
            if text or noise:
                return Line(text, noise)
            # Only echoed Ctrl-Z / ESC: nothing to report; look at the next line.


def _line_end(buf: bytearray) -> int:
    cr = buf.find(b"\r")
    lf = buf.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)
