"""The sans-IO AT engine: feed it bytes and clock values, take events and bytes to write.

Like h11's Connection it does no I/O and reads no clock: every call that may start a
command or expire a deadline takes ``now`` (any monotonic seconds), and the driver calls
:meth:`AtConnection.tick` at :meth:`AtConnection.next_deadline`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from engine.radio.at_commands import ESC, Command, FinalResult, parse_final
from engine.radio.at_events import (
    AtEvent,
    CommandAborted,
    CommandCompleted,
    CommandTimedOut,
    LinkDown,
    LinkUp,
    ModemRestarted,
    Noise,
    StrayLine,
    Urc,
)
from engine.radio.at_state import State, Trigger, next_state
from engine.radio.framing import MAX_LINE, Line, LineFramer, Overflow, Prompt
from engine.radio.urc import UrcTable

PROBE = "AT"


class AtConnection:
    """One modem link. Commands queue; one is in flight at a time.

    ``init`` is replayed at the front of the queue on :meth:`connection_made` and after
    every detected modem restart (a rebooted module has forgotten ATE0, AT+CMGF=1, ...).
    """

    def __init__(
        self,
        *,
        init: Sequence[Command] = (),
        urcs: UrcTable | None = None,
        probe_timeout: float = 2.0,
        settle: float = 0.3,
        link_down_after: int = 3,
        max_line: int = MAX_LINE,
    ) -> None:
        self.init: tuple[Command, ...] = tuple(init)
        self._urcs = urcs or UrcTable()
        self._probe_timeout = probe_timeout
        self._settle = settle
        self._link_down_after = link_down_after
        self._framer = LineFramer(max_line)
        self._state = State.IDLE
        self._queue: deque[Command] = deque()
        self._current: Command | None = None
        self._lines: list[str] = []
        self._deadline: float | None = None
        self._outbox = bytearray()
        self._urc_header: tuple[str, str, int] | None = None  # name, header, lines still due
        self._urc_body: list[str] = []
        self._silent_probes = 0
        self._link_down = False
        self._connected = False  # nothing is written before connection_made

    # -- inspection ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def current(self) -> Command | None:
        return self._current

    @property
    def queued(self) -> tuple[Command, ...]:
        return tuple(self._queue)

    @property
    def link_down(self) -> bool:
        return self._link_down

    def next_deadline(self) -> float | None:
        return self._deadline

    def data_to_send(self) -> bytes:
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    # -- inputs -------------------------------------------------------------------

    def submit(self, command: Command, now: float) -> None:
        self._queue.append(command)
        self._start_next(now)

    def connection_made(self, now: float) -> None:
        """A (new) port is open: start over with the init sequence, keep the queue.

        The init starts with ESC: a modem left in SMS text entry (its last owner died at
        the ``> `` prompt) would otherwise take every command for message text, for
        ever. Outside text entry a modem ignores it."""
        self._connected = True
        if self.init:
            self._outbox += ESC
        self._requeue_init()
        self._start_next(now)

    def connection_lost(self) -> list[AtEvent]:
        """The port went away: what was in flight is aborted, the queue is kept."""
        events: list[AtEvent] = []
        self._abort_current("port lost", events)
        self._to(Trigger.LINK_LOST)
        self._connected = False
        self._silent_probes = 0
        self._framer.clear()
        self._outbox.clear()
        self._deadline = None
        self._urc_header = None
        return events

    def feed(self, data: bytes, now: float) -> list[AtEvent]:
        events: list[AtEvent] = []
        self._framer.feed(data)
        while True:
            token = self._framer.next_token(prompt_expected=self._state is State.AWAIT_PROMPT)
            if token is None:
                break
            if isinstance(token, Prompt):
                self._on_prompt()
            elif isinstance(token, Overflow):
                events.append(Noise(token.noise))
            else:
                self._on_line(token, now, events)
            # Start the next command before reading on: what follows may be its prompt.
            self._start_next(now)
        self._start_next(now)
        return events

    def tick(self, now: float) -> list[AtEvent]:
        events: list[AtEvent] = []
        if self._deadline is None or now < self._deadline:
            return events
        if self._state in (State.AWAIT_PROMPT, State.AWAIT_RESULT):
            assert self._current is not None
            events.append(CommandTimedOut(self._current, tuple(self._lines)))
            if self._state is State.AWAIT_PROMPT:
                self._outbox += ESC  # leave the modem's SMS text entry
            self._current = None
            self._lines = []
            self._to(Trigger.TIMEOUT)
            self._send_probe(now)
        elif self._state is State.RESYNC:
            self._silent_probes += 1
            if self._silent_probes >= self._link_down_after and not self._link_down:
                self._link_down = True
                events.append(LinkDown())
            self._to(Trigger.TIMEOUT)
            self._send_probe(now)
        elif self._state is State.SETTLING:
            self._to(Trigger.QUIET)
            self._deadline = None
            self._start_next(now)
        return events

    # -- internals ----------------------------------------------------------------

    def _to(self, trigger: Trigger) -> None:
        self._state = next_state(self._state, trigger)

    def _start_next(self, now: float) -> None:
        if not self._connected or self._state is not State.IDLE or not self._queue:
            return
        command = self._queue.popleft()
        self._current = command
        self._lines = []
        self._outbox += command.encode()
        self._deadline = now + command.timeout
        self._to(Trigger.SEND_WITH_PROMPT if command.wants_prompt else Trigger.SEND)

    def _send_probe(self, now: float) -> None:
        self._outbox += PROBE.encode("ascii") + b"\r"
        self._deadline = now + self._probe_timeout

    def _on_prompt(self) -> None:
        command = self._current
        assert command is not None
        assert command.payload is not None
        self._outbox += command.payload
        self._to(Trigger.PROMPT)

    def _on_line(self, token: Line, now: float, events: list[AtEvent]) -> None:
        if token.noise:
            events.append(Noise(token.noise))
        line = token.text.strip()
        if not line:
            return
        if self._urc_header is not None:
            self._urc_body_line(line, events)
            return
        if self._urcs.is_boot_banner(line):
            self._restart(f"boot banner {line!r}", events)
            return
        current = self._current
        if current is not None and current.info_prefix and line.startswith(current.info_prefix):
            self._lines.append(line)
            return
        urc = self._urcs.match(line)
        if urc is not None:
            name, body_lines = urc
            if body_lines:
                self._urc_header = (name, line, body_lines)
                self._urc_body = []
            else:
                events.append(Urc(name, line))
            return
        final = parse_final(line)
        if final is not None:
            self._on_final(line, final, now, events)
            return
        if self._is_echo(line):
            return
        if current is not None:
            self._lines.append(line)
        else:
            events.append(StrayLine(line))

    def _urc_body_line(self, line: str, events: list[AtEvent]) -> None:
        assert self._urc_header is not None
        name, header, due = self._urc_header
        self._urc_body.append(line)
        if due > 1:
            self._urc_header = (name, header, due - 1)
            return
        self._urc_header = None
        events.append(Urc(name, header, "\n".join(self._urc_body)))

    def _on_final(self, line: str, final: FinalResult, now: float, events: list[AtEvent]) -> None:
        if self._state in (State.AWAIT_PROMPT, State.AWAIT_RESULT):
            assert self._current is not None
            events.append(CommandCompleted(self._current, tuple(self._lines), final))
            self._current = None
            self._lines = []
            self._deadline = None
            self._to(Trigger.FINAL)
        elif self._state is State.RESYNC:
            silent = self._silent_probes
            self._silent_probes = 0
            if self._link_down:
                self._link_down = False
                events.append(LinkUp())
            if silent:
                # Silent through whole probe periods, now answering: it rebooted and lost
                # its settings, whether or not we saw the banner.
                self._restart("answered after silence", events)
                return
            self._to(Trigger.FINAL)
            self._deadline = now + self._settle
        elif self._state is State.SETTLING:
            events.append(StrayLine(line))
            self._deadline = now + self._settle
        else:
            events.append(StrayLine(line))

    def _is_echo(self, line: str) -> bool:
        current = self._current
        if current is not None:
            if line.upper() == current.line.upper():
                return True
            if current.payload is not None:
                typed = current.payload.rstrip(b"\x1a\x1b").decode("ascii", "replace")
                if line == typed:
                    return True
        # Echo of the resync probe or of a command that has since timed out.
        return self._state in (State.RESYNC, State.SETTLING) and line.upper().startswith("AT")

    def _restart(self, reason: str, events: list[AtEvent]) -> None:
        self._abort_current(f"modem restarted ({reason})", events)
        events.append(ModemRestarted(reason))
        self._to(Trigger.RESTART)
        self._deadline = None
        self._silent_probes = 0
        self._requeue_init()

    def _abort_current(self, reason: str, events: list[AtEvent]) -> None:
        if self._current is not None:
            events.append(CommandAborted(self._current, reason))
        self._current = None
        self._lines = []

    def _requeue_init(self) -> None:
        init = set(map(id, self.init))
        rest = [c for c in self._queue if id(c) not in init]
        self._queue = deque([*self.init, *rest])
