"""Radio exceptions: serial and protocol failures mapped into the EngineError family."""

from __future__ import annotations

from engine.errors import EngineError


class RadioError(EngineError):
    """Base of every radio-gateway failure."""


class CommandError(RadioError):
    """The modem answered a command with ERROR, +CME ERROR or +CMS ERROR."""

    def __init__(self, command: str, result: str, code: int | None = None) -> None:
        super().__init__(f"modem refused {command!r}: {result}")
        self.command = command
        self.result = result
        self.code = code


class CommandTimeout(RadioError):
    """The modem did not answer a command within its timeout."""


class CommandAborted(RadioError):
    """A command was cut short: the modem restarted or the port went away."""


class LinkClosed(RadioError):
    """The link was closed by its owner; nothing more will be sent."""


class PortUnavailable(RadioError):
    """The serial device or socket could not be opened."""


class MessageFormatError(RadioError):
    """Text from the modem (UCS2 hex, +CMT header, +CMGS line) could not be parsed."""
