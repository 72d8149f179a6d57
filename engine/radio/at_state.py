"""The AT engine's states and its whole transition table (after h11/_state.py).

Rules:
- One command in flight: only IDLE may SEND; other commands wait in the queue.
- A command with a payload (AT+CMGS) waits for the ``> `` prompt first; a final result
  before the prompt (``+CMS ERROR``) ends it.
- A timeout never trusts the next result: RESYNC sends a bare ``AT`` probe (repeated
  while the modem is silent), then SETTLING swallows late results until the line has
  been quiet for a moment. Only then does the next command go out.
- RESTART (boot banner, or an answer after silent probes) and LINK_LOST end whatever is
  in flight; the init sequence goes to the front of the queue.
- Unsolicited codes and noise never change the state.
"""

from __future__ import annotations

from enum import Enum, auto


class State(Enum):
    IDLE = auto()
    AWAIT_PROMPT = auto()
    AWAIT_RESULT = auto()
    RESYNC = auto()
    SETTLING = auto()


class Trigger(Enum):
    SEND = auto()
    SEND_WITH_PROMPT = auto()
    PROMPT = auto()
    FINAL = auto()
    TIMEOUT = auto()
    QUIET = auto()
    RESTART = auto()
    LINK_LOST = auto()


TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.IDLE, Trigger.SEND): State.AWAIT_RESULT,
    (State.IDLE, Trigger.SEND_WITH_PROMPT): State.AWAIT_PROMPT,
    (State.AWAIT_PROMPT, Trigger.PROMPT): State.AWAIT_RESULT,
    (State.AWAIT_PROMPT, Trigger.FINAL): State.IDLE,
    (State.AWAIT_RESULT, Trigger.FINAL): State.IDLE,
    (State.AWAIT_PROMPT, Trigger.TIMEOUT): State.RESYNC,
    (State.AWAIT_RESULT, Trigger.TIMEOUT): State.RESYNC,
    (State.RESYNC, Trigger.TIMEOUT): State.RESYNC,
    (State.RESYNC, Trigger.FINAL): State.SETTLING,
    (State.SETTLING, Trigger.FINAL): State.SETTLING,
    (State.SETTLING, Trigger.QUIET): State.IDLE,
    **{(state, Trigger.RESTART): State.IDLE for state in State},
    **{(state, Trigger.LINK_LOST): State.IDLE for state in State},
}


def next_state(state: State, trigger: Trigger) -> State:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        msg = f"AT engine: no transition from {state.name} on {trigger.name}"
        raise RuntimeError(msg) from None
