"""The SMS text of a call-out: moved to :mod:`engine.wording` (the rules and the radio
share it); re-exported here for the radio's callers."""

from engine.wording import (
    ELLIPSIS,
    MIN_ADDRESS_UNITS,
    REPLY_HINT,
    TAG,
    format_callout,
    format_distance,
    shorten,
    spoken_text,
)

__all__ = [
    "ELLIPSIS",
    "MIN_ADDRESS_UNITS",
    "REPLY_HINT",
    "TAG",
    "format_callout",
    "format_distance",
    "shorten",
    "spoken_text",
]
