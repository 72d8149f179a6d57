"""Decoding CSV that may come from Excel in a Chinese office.

Excel writes "CSV UTF-8" with a byte-order mark and plain "CSV" in the system code page,
GBK on Chinese Windows; GB18030 is a superset of GBK, so it is tried for that. UTF-8 is
tried first: GB18030 decodes almost any byte string, but GBK text is rarely valid UTF-8.
"""

from __future__ import annotations

import codecs

DETECTED = ("utf-8-sig", "utf-8", "gb18030")


class UndecodableError(ValueError):
    """None of the encodings tried could decode the bytes."""

    def __init__(self, tried: tuple[str, ...], line: int, detail: str) -> None:
        super().__init__(
            f"cannot decode as {' or '.join(tried)} (first bad byte on line {line}: {detail});"
            " save as 'CSV UTF-8' or pass --encoding"
        )
        self.line = line


def decode_csv_bytes(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used). With ``encoding`` given only that one is tried (a UTF-8 BOM
    is still dropped); otherwise UTF-8 with BOM, UTF-8, then GB18030."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {encoding!r}") from exc
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"
        candidates: tuple[str, ...] = (encoding,)
    elif data.startswith(codecs.BOM_UTF8):
        candidates = ("utf-8-sig",)
    else:
        candidates = ("utf-8", "gb18030")
    first_error: UnicodeDecodeError | None = None
    for name in candidates:
        try:
            return data.decode(name), name
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
    assert first_error is not None
    line = data.count(b"\n", 0, first_error.start) + 1
    raise UndecodableError(candidates, line, first_error.reason)
