"""What the AT engine reports, one frozen dataclass per kind of event."""

from __future__ import annotations

from dataclasses import dataclass

from engine.radio.at_commands import Command, FinalResult


@dataclass(frozen=True)
class CommandCompleted:
    """A final result code ended ``command``; ``lines`` are its information lines."""

    command: Command
    lines: tuple[str, ...]
    result: FinalResult

    @property
    def ok(self) -> bool:
        return self.result.ok


@dataclass(frozen=True)
class CommandTimedOut:
    command: Command
    lines: tuple[str, ...]


@dataclass(frozen=True)
class CommandAborted:
    """Cut short by a modem restart or a lost port; the modem may or may not have acted."""

    command: Command
    reason: str


@dataclass(frozen=True)
class Urc:
    """An unsolicited result code; ``body`` is the text line that follows ``+CMT:``."""

    name: str
    line: str
    body: str | None = None


@dataclass(frozen=True)
class ModemRestarted:
    """Boot banner seen, or the modem answered after going silent. Init is being replayed."""

    reason: str


@dataclass(frozen=True)
class Noise:
    """Bytes that could not be part of an AT line, discarded."""

    data: bytes


@dataclass(frozen=True)
class StrayLine:
    """A line nobody asked for: a late answer, or text with no command in flight."""

    line: str


@dataclass(frozen=True)
class LinkDown:
    """The modem stopped answering even the resync probe."""


@dataclass(frozen=True)
class LinkUp:
    """The modem answers again after LinkDown."""


AtEvent = (
    CommandCompleted
    | CommandTimedOut
    | CommandAborted
    | Urc
    | ModemRestarted
    | Noise
    | StrayLine
    | LinkDown
    | LinkUp
)
