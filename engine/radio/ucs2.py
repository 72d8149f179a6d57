"""UCS2 hex as modems speak it with ``AT+CSCS="UCS2"``: UTF-16BE, four hex digits a unit.

Characters outside the BMP travel as surrogate pairs (two units), exactly as the
handset counts them against the 70-unit SMS limit.
"""

from __future__ import annotations

import binascii

from engine.radio.errors import MessageFormatError


def encode(text: str) -> str:
    """``"塘厦"`` -> ``"585853A6"`` (upper-case hex, what modems print)."""
    return text.encode("utf-16-be").hex().upper()


def decode(hex_text: str) -> str:
    """Inverse of :func:`encode`; rejects odd lengths, non-hex and lone surrogates."""
    cleaned = hex_text.strip()
    if len(cleaned) % 4:
        raise MessageFormatError(f"UCS2 hex length {len(cleaned)} is not a multiple of 4")
    try:
        return bytes.fromhex(cleaned).decode("utf-16-be")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise MessageFormatError(f"not UCS2 hex: {cleaned[:40]!r}") from exc


def looks_like_ucs2(text: str) -> bool:
    """True when ``text`` is plausibly UCS2 hex (modems send plain text in GSM mode)."""
    return bool(text) and len(text) % 4 == 0 and all(c in _HEX for c in text)


def units(text: str) -> int:
    """UTF-16 code units: what counts against the 70-unit single-SMS limit."""
    return len(text.encode("utf-16-be")) // 2


_HEX = frozenset("0123456789abcdefABCDEF")
