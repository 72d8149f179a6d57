"""The sans-IO AT engine: results, URCs anywhere, echo, prompt, timeouts, restarts, noise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.radio.at_commands import Command, ResultKind, parse_final
from engine.radio.at_connection import AtConnection
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
from engine.radio.at_state import TRANSITIONS, State, Trigger, next_state
from engine.radio.testing import cut, feed_all

pytestmark = pytest.mark.unit


def connected(*, init: tuple[Command, ...] = (), **kw: float) -> AtConnection:
    conn = AtConnection(init=init, **kw)  # type: ignore[arg-type]
    conn.connection_made(0.0)
    return conn


def only(events: list[AtEvent], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def test_ok_completes_the_command_and_writes_its_line() -> None:
    conn = connected()
    cmd = Command("AT+CSQ")
    conn.submit(cmd, 0.0)
    assert conn.data_to_send() == b"AT+CSQ\r"
    events = conn.feed(b"\r\n+CSQ: 23,0\r\n\r\nOK\r\n", 0.1)
    assert events == [CommandCompleted(cmd, ("+CSQ: 23,0",), parse_final("OK"))]  # type: ignore[arg-type]
    assert conn.state is State.IDLE


@pytest.mark.parametrize(
    ("line", "kind", "code"),
    [
        ("ERROR", ResultKind.ERROR, None),
        ("+CME ERROR: 10", ResultKind.CME_ERROR, 10),
        ("+CMS ERROR: 500", ResultKind.CMS_ERROR, 500),
        ("+CME ERROR: SIM not inserted", ResultKind.CME_ERROR, None),
    ],
)
def test_error_results_carry_kind_and_code(line: str, kind: ResultKind, code: int | None) -> None:
    conn = connected()
    conn.submit(Command("AT+CPIN?"), 0.0)
    (done,) = conn.feed(f"\r\n{line}\r\n".encode(), 0.0)
    assert isinstance(done, CommandCompleted)
    assert not done.ok
    assert (done.result.kind, done.result.code) == (kind, code)


def test_urcs_between_command_and_result_are_not_taken_as_its_lines() -> None:
    conn = connected()
    cmd = Command("AT+CSQ")
    conn.submit(cmd, 0.0)
    events = conn.feed(
        b'\r\n+CMTI: "SM",3\r\n\r\nRING\r\n\r\n+CSQ: 23,0\r\n\r\n+POC:970000\r\n\r\nOK\r\n', 0.0
    )
    assert [e.name for e in only(events, Urc)] == ["+CMTI", "RING", "+POC"]
    assert only(events, CommandCompleted)[0].lines == ("+CSQ: 23,0",)


def test_cmt_body_is_taken_whole_even_when_it_reads_like_a_result() -> None:
    conn = connected()
    cmd = Command("AT")
    conn.submit(cmd, 0.0)
    events = conn.feed(b'\r\n+CMT: "10086",,"25/11/29,20:41:05+32"\r\nOK\r\n\r\nOK\r\n', 0.0)
    assert events[0] == Urc("+CMT", '+CMT: "10086",,"25/11/29,20:41:05+32"', "OK")
    assert isinstance(events[1], CommandCompleted)
    assert events[1].command is cmd


def test_own_info_prefix_wins_over_urc_of_the_same_name() -> None:
    conn = connected()
    cmd = Command("AT+CPIN?")
    conn.submit(cmd, 0.0)
    events = conn.feed(b"\r\n+CPIN: READY\r\n\r\nOK\r\n", 0.0)
    assert events == [CommandCompleted(cmd, ("+CPIN: READY",), parse_final("OK"))]  # type: ignore[arg-type]


def test_echoed_command_line_is_ignored() -> None:
    conn = connected()
    cmd = Command("AT+CSQ")
    conn.submit(cmd, 0.0)
    (done,) = conn.feed(b"AT+CSQ\r\r\n+CSQ: 9,0\r\n\r\nOK\r\n", 0.0)
    assert isinstance(done, CommandCompleted)
    assert done.lines == ("+CSQ: 9,0",)


def sms_command() -> Command:
    return Command('AT+CMGS="10086"', payload=b"00410042\x1a", timeout=10)


@pytest.mark.parametrize("echo", [False, True])
def test_prompt_then_payload_then_message_reference(echo: bool) -> None:
    conn = connected()
    cmd = sms_command()
    conn.submit(cmd, 0.0)
    assert conn.data_to_send() == b'AT+CMGS="10086"\r'
    prefix = b'AT+CMGS="10086"\r' if echo else b""
    assert conn.feed(prefix + b"\r\n>", 0.0) == []
    assert conn.data_to_send() == b""  # half a prompt is not a prompt
    assert conn.feed(b" ", 0.0) == []
    assert conn.state is State.AWAIT_RESULT
    assert conn.data_to_send() == b"00410042\x1a"
    payload_echo = b"00410042\x1a" if echo else b""
    (done,) = conn.feed(payload_echo + b"\r\n+CMGS: 7\r\n\r\nOK\r\n", 0.0)
    assert isinstance(done, CommandCompleted)
    assert done.lines == ("+CMGS: 7",)


def test_error_before_prompt_ends_the_sms_command() -> None:
    conn = connected()
    conn.submit(sms_command(), 0.0)
    (done,) = conn.feed(b"\r\n+CMS ERROR: 302\r\n", 0.0)
    assert isinstance(done, CommandCompleted)
    assert done.result.code == 302
    assert conn.state is State.IDLE


def test_prompt_is_not_recognised_when_no_command_wants_one() -> None:
    conn = connected()
    conn.submit(Command("AT"), 0.0)
    events = conn.feed(b"\r\n> \r\nOK\r\n", 0.0)
    assert isinstance(events[-1], CommandCompleted)
    assert events[-1].lines == ("> ".strip(),)


def test_one_command_in_flight_the_rest_queued() -> None:
    conn = connected()
    first, second = Command("AT"), Command("ATI")
    conn.submit(first, 0.0)
    conn.submit(second, 0.0)
    assert conn.data_to_send() == b"AT\r"
    assert conn.queued == (second,)
    conn.feed(b"\r\nOK\r\n", 0.0)
    assert conn.data_to_send() == b"ATI\r"
    assert conn.current is second


def test_nothing_is_written_before_the_port_is_open() -> None:
    conn = AtConnection()
    conn.submit(Command("AT"), 0.0)
    assert conn.data_to_send() == b""
    conn.connection_made(1.0)
    assert conn.data_to_send() == b"AT\r"


def test_timeout_probes_then_settles_before_the_next_command() -> None:
    conn = connected(settle=0.5)
    slow, nxt = Command("AT+CSQ", timeout=2.0), Command("ATI")
    conn.submit(slow, 0.0)
    conn.submit(nxt, 0.0)
    conn.data_to_send()
    assert conn.tick(1.9) == []
    assert conn.next_deadline() == 2.0
    assert conn.tick(2.0) == [CommandTimedOut(slow, ())]
    assert conn.data_to_send() == b"AT\r"  # the resync probe, not the next command
    # The late answer to the timed-out command arrives first, then the probe's.
    assert conn.feed(b"\r\n+CSQ: 1,0\r\n\r\nOK\r\n", 2.1) == [StrayLine("+CSQ: 1,0")]
    assert conn.state is State.SETTLING
    assert conn.feed(b"\r\nOK\r\n", 2.2) == [StrayLine("OK")]
    assert conn.data_to_send() == b""
    assert conn.tick(2.69) == []
    conn.tick(2.7)
    assert conn.data_to_send() == b"ATI\r"


def test_timeout_waiting_for_prompt_escapes_text_entry() -> None:
    conn = connected()
    cmd = sms_command()
    conn.submit(cmd, 0.0)
    conn.data_to_send()
    assert conn.tick(10.0) == [CommandTimedOut(cmd, ())]
    assert conn.data_to_send() == b"\x1bAT\r"


def test_boot_banner_aborts_in_flight_and_replays_init_first() -> None:
    init = (Command("ATE0"), Command("AT+CMGF=1"))
    conn = connected(init=init)
    for _ in init:
        conn.data_to_send()
        conn.feed(b"\r\nOK\r\n", 0.0)
    work, later = Command("AT+CSQ"), Command("ATI")
    conn.submit(work, 0.0)
    conn.submit(later, 0.0)
    conn.data_to_send()
    events = conn.feed(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n", 0.0)
    assert events[:2] == [
        CommandAborted(work, "modem restarted (boot banner 'RDY')"),
        ModemRestarted("boot banner 'RDY'"),
    ]
    assert isinstance(events[2], Urc)
    assert conn.data_to_send() == b"ATE0\r"
    assert conn.queued == (init[1], later)


def test_answer_after_silent_probes_counts_as_restart_and_link_down_up() -> None:
    init = (Command("ATE0"),)
    conn = connected(init=init, probe_timeout=1.0, link_down_after=2)
    conn.feed(b"\r\nOK\r\n", 0.0)  # init done
    cmd = Command("AT+CSQ", timeout=1.0)
    conn.submit(cmd, 0.0)
    conn.data_to_send()
    assert conn.tick(1.0) == [CommandTimedOut(cmd, ())]
    assert conn.tick(2.0) == []
    assert conn.tick(3.0) == [LinkDown()]
    assert conn.link_down
    assert conn.data_to_send() == b"AT\rAT\rAT\r"
    events = conn.feed(b"\r\nOK\r\n", 3.5)
    assert events == [LinkUp(), ModemRestarted("answered after silence")]
    assert conn.data_to_send() == b"ATE0\r"


def test_port_loss_aborts_in_flight_keeps_queue_and_reinits_on_reconnect() -> None:
    init = (Command("ATE0"),)
    conn = connected(init=init)
    conn.feed(b"\r\nOK\r\n", 0.0)
    a, b = Command("AT+CSQ"), Command("ATI")
    conn.submit(a, 0.0)
    conn.submit(b, 0.0)
    conn.data_to_send()
    conn.feed(b"\r\n+CSQ", 0.0)  # half a line, gone with the port
    assert conn.connection_lost() == [CommandAborted(a, "port lost")]
    assert conn.data_to_send() == b""
    conn.connection_made(5.0)
    assert conn.data_to_send() == b"\x1bATE0\r"  # ESC: out of a text entry left behind
    assert conn.queued == (b,)


def test_binary_noise_is_reported_and_the_next_line_resyncs() -> None:
    conn = connected()
    cmd = Command("AT")
    conn.submit(cmd, 0.0)
    events = conn.feed(b"\x00\xff\xfe\r\n\x80O\x81K\r\n", 0.0)
    assert events[0] == Noise(b"\x00\xff\xfe")
    assert events[1] == Noise(b"\x80\x81")
    assert events[2] == CommandCompleted(cmd, (), parse_final("OK"))  # type: ignore[arg-type]


def test_overlong_run_without_line_end_is_dropped_whole() -> None:
    conn = connected(max_line=64)
    conn.submit(Command("AT"), 0.0)
    events = conn.feed(b"x" * 100, 0.0) + conn.feed(b"yy\r\nOK\r\n", 0.0)
    assert [type(e) for e in events] == [Noise, Noise, CommandCompleted]


def test_stray_lines_with_nothing_in_flight_are_reported() -> None:
    conn = connected()
    assert conn.feed(b"\r\nOK\r\n\r\nhello\r\n", 0.0) == [StrayLine("OK"), StrayLine("hello")]


def test_state_table_covers_restart_and_loss_from_every_state() -> None:
    for state in State:
        assert TRANSITIONS[(state, Trigger.RESTART)] is State.IDLE
        assert TRANSITIONS[(state, Trigger.LINK_LOST)] is State.IDLE
    with pytest.raises(RuntimeError, match="no transition"):
        next_state(State.IDLE, Trigger.PROMPT)


# -- Hypothesis: any chunking, URCs at any line boundary, same events ----------------------

URC_SEGMENTS = [
    b'\r\n+CMTI: "SM",3\r\n',
    b"\r\nRING\r\n",
    b"\r\n+POC:0b000000\r\n",
    b'\r\n+CMT: "00310030003000380036",,"25/11/29,20:41:05+32"\r\n00310020004B003700510032\r\n',
    b"\r\n\x00\x13\xff\r\n",  # noise
]


def scenario(echo: bool) -> tuple[list[Command], list[bytes]]:
    """Commands and the modem's answer to each, as a list of line-level segments."""
    csq, sms, poc = Command("AT+CSQ"), sms_command(), Command("AT+POC=0B0000", response_prefix="")
    e = (lambda c: c.encode()) if echo else (lambda c: b"")
    segments = [
        e(csq) + b"\r\n+CSQ: 23,0\r\n",
        b"\r\nOK\r\n",
        e(sms) + b"\r\n> ",
        (b"00410042\x1a" if echo else b"") + b"\r\n+CMGS: 12\r\n",
        b"\r\nOK\r\n",
        e(poc) + b"\r\nOK\r\n",
    ]
    return [csq, sms, poc], segments


@given(
    echo=st.booleans(),
    inserts=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(URC_SEGMENTS)), max_size=6),
    cuts=st.lists(st.integers(0, 600), max_size=40),
)
def test_any_chunking_and_urc_placement_gives_the_same_results(
    echo: bool, inserts: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    commands, segments = scenario(echo)
    for position, urc in sorted(inserts, key=lambda pair: -pair[0]):
        segments.insert(position, urc)
    stream = b"".join(segments)

    def run(chunks: list[bytes]) -> tuple[list[AtEvent], bytes]:
        conn = connected()
        for command in commands:
            conn.submit(command, 0.0)
        events = feed_all(conn, chunks)
        return events, conn.data_to_send()

    whole = run([stream])
    chunked = run(cut(stream, cuts))
    assert chunked == whole
    events, written = whole
    done = only(events, CommandCompleted)
    assert [d.command for d in done] == commands
    assert all(d.ok for d in done)
    assert done[0].lines == ("+CSQ: 23,0",)
    assert done[1].lines == ("+CMGS: 12",)
    urcs = [s for _, s in inserts if not s.startswith(b"\r\n\x00")]
    assert len(only(events, Urc)) == len(urcs)
    assert written.endswith(b"AT+POC=0B0000\r")
