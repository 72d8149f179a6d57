"""Who is behind a radio id: the SMS number, the PoC user id and the talk group.

The gateway depends only on the small :class:`RadioDirectory` protocol, built from a
plain mapping (tests, the simulator) or from the responders registry (``engine/registry``,
``radios.csv``).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RadioEntry:
    radio_id: str
    sms_number: str
    poc_id: int | None = None
    talk_group: str | None = None
    talk_group_id: int | None = None
    """the vendor's numeric talk-group id (registry ``talk_group_id``)"""


class RadioDirectory(Protocol):
    def entry(self, radio_id: str) -> RadioEntry | None: ...
    def radio_of_number(self, number: str) -> str | None: ...


class RegistryRadio(Protocol):
    """What the directory reads from a registry radio (``engine.registry.models.Radio``)."""

    @property
    def id(self) -> str: ...
    @property
    def poc_id(self) -> str: ...
    @property
    def sms_number(self) -> str: ...
    @property
    def talk_group(self) -> str: ...


class HasRadios(Protocol):
    @property
    def radios(self) -> Mapping[str, RegistryRadio]: ...


def normalise_number(number: str) -> str:
    """Digits as the registry writes them: no spaces or dashes, no +86 / 0086 prefix."""
    digits = re.sub(r"[\s\-()]", "", number)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            return digits[len(prefix) :]
    return digits


def mask_number(number: str) -> str:
    """A phone number for logs: the last four digits only (``*******1530``)."""
    digits = normalise_number(number)
    return "*" * max(0, len(digits) - 4) + digits[-4:]


def talk_group_number(name: str) -> int:
    """The numeric PoC group id of a talk group.

    The registry names groups (``TG-KZ001``); the hex dialect wants a 32-bit id. A
    numeric name is used as is, anything else maps to a stable CRC32 until the registry
    carries the vendor's group numbers.
    """
    return int(name) if name.isdigit() else zlib.crc32(name.encode("utf-8"))


class StaticDirectory:
    """An immutable radio directory."""

    def __init__(self, entries: Iterable[RadioEntry]) -> None:
        self._by_id = {e.radio_id: e for e in entries}
        self._by_poc: dict[int, str] | None = None
        self._by_number: dict[str, str] = {}
        for e in self._by_id.values():
            number = normalise_number(e.sms_number)
            if number in self._by_number:
                raise ValueError(
                    f"SMS number {number} belongs to {self._by_number[number]} and {e.radio_id}"
                )
            self._by_number[number] = e.radio_id

    @classmethod
    def from_mapping(cls, numbers: Mapping[str, str | RadioEntry]) -> StaticDirectory:
        """``{radio_id: sms_number}`` (or full entries)."""
        return cls(
            v if isinstance(v, RadioEntry) else RadioEntry(k, normalise_number(v))
            for k, v in numbers.items()
        )

    @classmethod
    def from_registry(cls, registry: HasRadios) -> StaticDirectory:
        """Every handset, and every volunteer's own phone as ``sms:<volunteer id>``: the
        address the rules give call-outs to people without a handset (and to handset
        holders whose handset is offline). Handset SIMs (1440...) and personal phones
        never share a number."""
        radios = [
            RadioEntry(
                radio_id=r.id,
                sms_number=normalise_number(r.sms_number),
                poc_id=int(r.poc_id) if r.poc_id.isdigit() else None,
                talk_group=r.talk_group or None,
                talk_group_id=_vendor_group(r),
            )
            for r in registry.radios.values()
        ]
        volunteers = getattr(registry, "volunteers", None) or {}
        phones = [
            RadioEntry(radio_id=f"sms:{v.id}", sms_number=normalise_number(v.phone))
            for v in volunteers.values()
        ]
        return cls([*radios, *phones])

    def __len__(self) -> int:
        return len(self._by_id)

    def entries(self) -> list[RadioEntry]:
        return list(self._by_id.values())

    def entry(self, radio_id: str) -> RadioEntry | None:
        return self._by_id.get(radio_id)

    def radio_of_number(self, number: str) -> str | None:
        return self._by_number.get(normalise_number(number))

    def radio_of_poc(self, poc_id: int) -> str | None:
        """The radio whose PoC user id this is (presence reports name users)."""
        if self._by_poc is None:
            self._by_poc = {e.poc_id: e.radio_id for e in self._by_id.values() if e.poc_id}
        return self._by_poc.get(poc_id)


def _vendor_group(radio: object) -> int | None:
    value = getattr(radio, "talk_group_id", None)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def group_number(entry: RadioEntry) -> int | None:
    """The number to dial for an entry's talk group: the vendor's id from the registry,
    or a talk-group name that is itself a number; None otherwise (no hashed names)."""
    if entry.talk_group_id is not None:
        return entry.talk_group_id
    if entry.talk_group is not None and entry.talk_group.isdigit():
        return int(entry.talk_group)
    return None
