"""The gateway end to end: real broker, simulator on a real pty, real bytes both ways."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.config import Settings
from engine.kafka.connection import client_kwargs
from engine.kafka.produce import producer
from engine.kafka.tail import tail
from engine.models import Ack, CallOut, Channel, Priority
from engine.radio import sms
from engine.radio.directory import RadioEntry, StaticDirectory
from engine.radio.gateway import Gateway, _reply_id
from engine.radio.metrics import GatewayMetrics
from engine.radio.poc import HexOpcodeDialect
from engine.radio.reply_codes import reply_code, with_code
from engine.radio.sent_log import SentLog
from engine.radio.simulator import HandsetScript, ModemSimulator, PtyModem
from engine.radio.transport import ModemLink
from engine.radio.voice import Voice

pytestmark = pytest.mark.integration

WITHIN = 60.0  # generous bound for a loaded CI box; never a timing assertion
INCIDENT = "INC-20261129-XYK7Q2"  # reply code K7Q2
TEXT = "[塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场"
NUMBERS = {f"R{i:03d}": f"1380013{i:04d}" for i in range(1, 12)}  # a 1+10 fan-out
KEY = b"integration-test-reply-key"


def code(radio_id: str, incident: str = INCIDENT, stage: int = 0) -> str:
    """The reply code the gateway prints for this recipient."""
    return reply_code(KEY, incident, stage, radio_id)


def text_for(radio_id: str) -> str:
    return with_code(TEXT, INCIDENT, code(radio_id))


@pytest.fixture(autouse=True)
async def _nothing_left_behind() -> AsyncIterator[None]:
    fds = set(os.listdir("/proc/self/fd"))
    yield
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert set(os.listdir("/proc/self/fd")) <= fds


def callout(radio_id: str, priority: Priority = Priority.P1) -> CallOut:
    return CallOut(
        idempotency_key=CallOut.key_for(INCIDENT, 0, radio_id),
        incident_id=INCIDENT,
        stage=0,
        radio_id=radio_id,
        channel=Channel.SMS,
        text=TEXT,
        priority=priority,
    )


async def publish(settings: Settings, callouts: list[CallOut]) -> None:
    async with producer(settings) as p:
        for c in callouts:
            await p.send_and_wait(
                settings.topic("callouts"), c.to_json_bytes(), key=c.radio_id.encode()
            )


async def records(settings: Settings, logical: str, n: int) -> list[dict[str, Any]]:
    """The first ``n`` records of a topic, waiting for them to arrive."""
    out = [
        r["value"]
        async for r in tail(
            settings, settings.topic(logical), from_beginning=True, max_records=n,
            idle_timeout_s=WITHIN,
        )
    ]  # fmt: skip
    assert len(out) == n, out
    return out


async def committed(settings: Settings, group: str) -> dict[int, int | None]:
    topic = settings.topic("callouts")
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=group)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(2)}
    finally:
        await consumer.stop()


async def wait_committed(settings: Settings, group: str, total: int) -> None:
    """Until the group's commits cover ``total`` call-outs (polling, bounded)."""
    async with asyncio.timeout(WITHIN):
        while True:
            if sum(o or 0 for o in (await committed(settings, group)).values()) >= total:
                return
            await asyncio.sleep(0.2)  # the broker offers no commit notification


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    task = asyncio.create_task(gateway.run())
    try:
        yield gateway
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gateway.sent.close()


def make_gateway(
    settings: Settings,
    link: ModemLink,
    log: Path,
    *,
    group: str = "radio-gateway",
    directory: StaticDirectory | None = None,
    **kw: Any,
) -> Gateway:
    return Gateway(
        settings,
        link,
        directory or StaticDirectory.from_mapping(NUMBERS),
        SentLog(log),
        radio_id="GW-TEST",
        group_id=group,
        metrics=GatewayMetrics(),
        reply_key=KEY,
        **kw,
    )


def metric(gateway: Gateway, name: str, **labels: str) -> float:
    value = gateway.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_callout_to_sms_to_reply_to_ack(kafka_settings: Settings, tmp_path: Path) -> None:
    modem = ModemSimulator(handsets={NUMBERS["R001"]: HandsetScript.accept(0.05)})
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem, link=tmp_path / "ttyUSB0") as host,
        ModemLink(host.path) as link,
        running(make_gateway(kafka_settings, link, tmp_path / "sent.jsonl")) as gw,
    ):
        await publish(kafka_settings, [callout("R001")])
        sent, accepted = await records(kafka_settings, "acks", 2)
        assert [(r.number, r.text) for r in modem.received] == [(NUMBERS["R001"], text_for("R001"))]
        assert sent["kind"] == "sent"  # the module took it (no status reports here)
        assert sent["idempotency_key"] == f"{INCIDENT}/0/R001"
        assert sent["message_refs"] == [modem.received[0].reference]
        assert (accepted["kind"], accepted["radio_id"]) == ("accept", "R001")
        assert accepted["incident_id"] == INCIDENT

        # Rejected, never acked: a stranger, a code nobody called, a radio not called.
        host.inject_sms("13912345678", f"1 {code('R001')}")
        host.inject_sms(NUMBERS["R001"], "1 ZZZZ")
        host.inject_sms(NUMBERS["R002"], "3 K7Q2")
        host.inject_sms(NUMBERS["R001"], f"3 {code('R001')}")  # replies are handled in order
        acks = await records(kafka_settings, "acks", 3)
        assert [a["kind"] for a in acks] == ["sent", "accept", "on_scene"]
        for reason in ("unknown_number", "unknown_code", "not_called"):
            assert metric(gw, "engine_radio_replies_rejected_total", reason=reason) == 1
        assert metric(gw, "engine_radio_callouts_sent_total", channel="sms") == 1
        assert metric(gw, "engine_decision_to_callout_seconds_count") == 1
        await wait_committed(kafka_settings, "radio-gateway", 1)


async def test_poc_network_down_marks_the_radio_offline(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    modem = ModemSimulator()
    gateway_kw = {"dialect": HexOpcodeDialect()}
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
        running(make_gateway(kafka_settings, link, tmp_path / "sent.jsonl", **gateway_kw)) as gw,
    ):
        await host.wait_for(lambda: "AT+POC=030000" in modem.commands, within=WITHIN)
        host.inject_poc("970000")
        host.inject_poc("970001")
        down, up = await records(kafka_settings, "unit-status", 2)
        assert (down["unit_id"], down["radio_online"]) == ("GW-TEST", False)
        assert up["radio_online"] is True
        assert metric(gw, "engine_radio_poc_network_up") == 1


async def test_a_restart_does_not_page_twice(kafka_settings: Settings, tmp_path: Path) -> None:
    modem = ModemSimulator()
    radios = ["R001", "R002", "R003"]
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
    ):
        await publish(kafka_settings, [callout(r) for r in radios])
        async with running(make_gateway(kafka_settings, link, tmp_path / "a.jsonl")):
            await records(kafka_settings, "acks", 3)
        assert len(modem.received) == 3

        # As if no commit had survived: another group reads every call-out again. Both
        # the local log alone and the acks topic alone (a lost disk) must stop a re-page.
        for group, log, history in (("again-1", "a.jsonl", False), ("again-2", "b.jsonl", True)):
            gateway = make_gateway(
                kafka_settings, link, tmp_path / log, group=group, read_history=history
            )
            async with running(gateway) as gw:
                await wait_committed(kafka_settings, group, 3)
                assert metric(gw, "engine_radio_callouts_skipped_total", reason="duplicate") == 3
        assert len(modem.received) == 3


async def test_unplug_mid_fan_out_delivers_every_callout_exactly_once(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    modem = ModemSimulator()
    cmgs_seen = 0

    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem, link=tmp_path / "ttyUSB0") as host,
        ModemLink(host.path) as link,
    ):

        def pull_plug(line: str) -> None:
            nonlocal cmgs_seen
            if line.startswith("AT+CMGS"):
                cmgs_seen += 1
                if cmgs_seen == 4:
                    host.unplug()

        host.on_command = pull_plug
        await publish(kafka_settings, [callout(r) for r in NUMBERS])
        async with running(make_gateway(kafka_settings, link, tmp_path / "sent.jsonl")) as gw:
            await host.wait_for(lambda: not host.plugged, within=WITHIN)
            assert len(modem.received) == 3
            host.replug()
            acks = await records(kafka_settings, "acks", len(NUMBERS))
            await wait_committed(kafka_settings, "radio-gateway", len(NUMBERS))
            assert metric(gw, "engine_radio_reconnects_total") == 1
        assert link.connects == 2
    assert Counter(r.number for r in modem.received) == Counter(NUMBERS.values())
    assert sorted(a["radio_id"] for a in acks) == sorted(NUMBERS)
    assert {a["kind"] for a in acks} == {"sent"}


async def test_poc_voice_callouts_use_the_opcodes(kafka_settings: Settings, tmp_path: Path) -> None:
    """poc_single calls the handset, poc_group joins its talk group; espeak-ng speaks."""
    directory = StaticDirectory(
        [
            RadioEntry(
                "R001",
                NUMBERS["R001"],
                poc_id=860100001,
                talk_group="TG-KZ001",
                talk_group_id=860200001,
            )
        ]
    )
    single = callout("R001").model_copy(
        update={"channel": Channel.POC_SINGLE, "idempotency_key": "k-single"}
    )
    group = callout("R001").model_copy(
        update={"channel": Channel.POC_GROUP, "idempotency_key": "k-group"}
    )
    modem = ModemSimulator()
    gateway_kw = {"dialect": HexOpcodeDialect(), "voice": Voice(tail=0.05)}
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
        running(
            make_gateway(
                kafka_settings, link, tmp_path / "s.jsonl", directory=directory, **gateway_kw
            )
        ),
    ):
        await publish(kafka_settings, [single])
        first = await records(kafka_settings, "acks", 2)
        await publish(kafka_settings, [group])
        acks = await records(kafka_settings, "acks", 3)
    # the single call: made (sent) and answered (the module's call result: delivered)
    assert sorted((a["channel"], a["kind"]) for a in first) == [
        ("poc_single", "delivered"),
        ("poc_single", "sent"),
    ]
    assert (acks[2]["channel"], acks[2]["kind"]) == ("poc_group", "sent")
    poc = [c for c in modem.commands if c.startswith("AT+POC=")]
    gid = f"{860200001:08X}"  # the vendor id from the registry, not a hash of the name
    assert poc == [
        "AT+POC=005200",
        "AT+POC=030000",
        f"AT+POC=0A0000{860100001:08X}",
        "AT+POC=0B0000",
        "AT+POC=0C0000",
        f"AT+POC=092200{gid}",
        "AT+POC=0B0000",
        "AT+POC=0C0000",
    ]
    assert not modem.received  # no SMS for voice call-outs


async def test_presence_and_positions_reach_unit_status(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The module's presence and position reports for a handset become unit-status
    records under the handset's radio id (issue 13)."""
    directory = StaticDirectory(
        [RadioEntry("R001", NUMBERS["R001"], poc_id=860100001, talk_group_id=860200001)]
    )
    modem = ModemSimulator()
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
        running(
            make_gateway(
                kafka_settings, link, tmp_path / "s.jsonl", directory=directory,
                dialect=HexOpcodeDialect(), voice=Voice(tail=0.05),
            )
        ),
    ):  # fmt: skip
        await link.wait_connected()
        modem.set_presence(860100001, NUMBERS["R001"], online=False)
        modem.report_position(860100001, 22.8031, 114.0842)
        modem.report_position(999, 22.0, 114.0)  # a user no radio has: not reported
        host._poke()
        statuses = [
            s for s in await records(kafka_settings, "unit-status", 2) if s["unit_id"] == "R001"
        ]
    offline = next(s for s in statuses if s.get("radio_online") is False)
    assert offline["reason"] == "PoC handset offline"
    moved = next(s for s in statuses if s.get("location"))
    assert moved["location"] == {"lat": 22.8031, "lon": 114.0842}


async def test_a_stored_reply_already_published_is_deleted_not_published_again(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The gateway died after Kafka took a stored reply's Ack and before AT+CMGD: the
    next gateway finds the reply still on the module, sees its ``reply_id`` on ``acks``,
    and deletes it without a second Ack. A reply it has not published is published once
    and deleted (issue 13)."""
    modem = ModemSimulator()
    log = tmp_path / "sent.jsonl"
    async with asyncio.timeout(WITHIN), PtyModem(modem) as host:
        async with ModemLink(host.path) as link, running(make_gateway(kafka_settings, link, log)):
            await publish(kafka_settings, [callout("R001"), callout("R002")])
            await records(kafka_settings, "acks", 2)  # both sent
        # no gateway now: two replies wait on the module
        host.inject_sms(NUMBERS["R001"], f"1 {code('R001')}")
        host.inject_sms(NUMBERS["R002"], f"1 {code('R002')}")
        assert sorted(modem.storage) == [1, 2]
        # the first one's Ack made it to Kafka before the crash
        sender, text, scts, _ = modem.storage[1]
        first = sms.StoredSms(1, sender, text, sms.parse_timestamp(scts), scts)
        done = Ack.model_validate(
            {"incident_id": INCIDENT, "radio_id": "R001", "kind": "accept",
             "reply_id": _reply_id(first), "source": "radio-gateway"}
        )  # fmt: skip
        async with producer(kafka_settings) as p:
            await p.send_and_wait(kafka_settings.topic("acks"), done.to_json_bytes())
        async with ModemLink(host.path) as link, running(make_gateway(kafka_settings, link, log)):
            await host.wait_for(lambda: not modem.storage, within=WITHIN)
            await records(kafka_settings, "acks", 4)  # 2 sent, R001's accept, R002's
            await asyncio.sleep(1.0)  # time for a second R001 accept, if one were coming
        acks = [
            r["value"]
            async for r in tail(
                kafka_settings, kafka_settings.topic("acks"), from_beginning=True,
                idle_timeout_s=2,
            )
        ]  # fmt: skip
    accepts = sorted(a["radio_id"] for a in acks if a["kind"] == "accept")
    assert accepts == ["R001", "R002"]  # one each: R001's was not published again
    assert {"AT+CMGD=1", "AT+CMGD=2"} <= set(modem.commands)
