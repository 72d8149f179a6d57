"""Issue 14 at the gateway, on the real broker and a real pty: replies that prove who
answers (every rejection counted and in ``audit``), pages only to whom they should,
once, and a bookkeeping failure that stops the gateway without losing or repeating."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from engine.config import Settings
from engine.kafka.connection import client_kwargs
from engine.models import CallOut, Channel, Priority
from engine.radio.send_loop import BookkeepingFailed
from engine.radio.simulator import ModemSimulator, PtyModem
from engine.radio.transport import ModemLink
from tests.integration.test_radio_gateway_kafka import (
    INCIDENT,
    NUMBERS,
    TEXT,
    WITHIN,
    _nothing_left_behind,
    callout,
    code,
    make_gateway,
    metric,
    publish,
    records,
    running,
    wait_committed,
)

pytestmark = pytest.mark.integration
__all__ = ["_nothing_left_behind"]  # the fixture, used here too

R1, R2, R3 = NUMBERS["R001"], NUMBERS["R002"], NUMBERS["R003"]


def with_settings(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update=update)


async def test_every_rejected_reply_is_counted_and_audited(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    offset = 0.0

    def clock() -> float:
        return time.time() + offset

    settings = with_settings(kafka_settings, radio_reply_open_s=3600.0)
    modem = ModemSimulator()
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
        running(make_gateway(settings, link, tmp_path / "sent.jsonl", clock=clock)) as gw,
    ):
        await publish(settings, [callout("R001"), callout("R002")])
        await records(settings, "acks", 2)  # both delivered
        sent = [
            ("13912345678", f"1 {code('R001')}"),  # unknown_number
            (R1, "好的收到"),  # no_action
            (R1, f"1 {code('R002')}"),  # other_recipient: R002's code from R001's phone
            (R3, f"1 {code('R003')}"),  # not_called: R003 was never paged
            (R1, "1 ZZZZ"),  # unknown_code
            (R1, f"1 {code('R001')}"),  # accepted
            (R1, f"1 {code('R001')}"),  # repeat
        ]
        sent += [("13800139999", f"{i} XXXX") for i in range(7)]  # 6 unknown, 1 throttled
        for number, text in sent:
            host.inject_sms(number, text)
        acks = await records(settings, "acks", 3)
        assert [(a["kind"], a["radio_id"]) for a in acks[2:]] == [("accept", "R001")]

        # A stand-down closes the incident: its codes take no more replies.
        stand_down = callout("R001").model_copy(
            update={"idempotency_key": f"{INCIDENT}/end/R001", "text": "[塘厦义警] #K7Q2 已处置"}
        )
        stand_down = CallOut.model_validate({**stand_down.model_dump(), "stand_down": True})
        await publish(settings, [stand_down])
        await records(settings, "acks", 4)
        assert modem.received[-1].text == "[塘厦义警] #K7Q2 已处置"  # no reply code in it
        host.inject_sms(R2, f"3 {code('R002')}")  # closed

        # A second incident, answered a day later: expired.
        other = "INC-20261129-ZZZZZZ"
        late = CallOut(
            idempotency_key=CallOut.key_for(other, 0, "R003"), incident_id=other, stage=0,
            radio_id="R003", channel=Channel.SMS, text="#ZZZZ 回1", priority=Priority.P2,
        )  # fmt: skip
        await publish(settings, [late])
        await records(settings, "acks", 5)
        offset = 2 * 3600.0
        host.inject_sms(R3, f"1 {code('R003', other)}")

        # A +CMT the gateway cannot read: malformed.
        host.inject_noise(b'\r\n+CMT: "not hex",,"25/11/29,20:41:05+32"\r\nZZ\r\n')

        expected = Counter(
            unknown_number=1 + 6,
            no_action=1,
            other_recipient=1,
            not_called=1,
            unknown_code=1,
            repeat=1,
            throttled=1,
            closed=1,
            expired=1,
        )
        total = sum(expected.values())
        audit = await records(settings, "audit", total + 1)  # + malformed
        reasons = Counter(a["reason"] for a in audit)
        assert reasons == expected + Counter(malformed=1)
        for reason, n in reasons.items():
            assert metric(gw, "engine_radio_replies_rejected_total", reason=reason) == n
        closed = next(a for a in audit if a["reason"] == "closed")
        assert (closed["incident_id"], closed["radio_id"], closed["sender"]) == (
            INCIDENT, "R002", R2,
        )  # fmt: skip
        assert all(a["source"] == "radio-gateway" and a["at"] for a in audit)
        # only the one good reply became an ack
        acks = await records(settings, "acks", 5)
        assert [a["kind"] for a in acks].count("accept") == 1


async def test_the_gateway_pages_only_what_it_should(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = with_settings(
        kafka_settings,
        radio_allow_numbers=("+86 139-0000-0001",),
        radio_max_sms_parts=2,
        radio_callout_ttl_s=600.0,
    )

    def outside(key: str, to: str | None) -> CallOut:
        data = {**callout("R001").model_dump(), "idempotency_key": key, "radio_id": key}
        return CallOut.model_validate({**data, "to": to} if to else data)

    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    stale = CallOut.model_validate(
        {**callout("R003").model_dump(), "decided_at": old}
    )  # fmt: skip
    long = callout("R002").model_copy(update={"text": "很长的地址" * 40})  # 200 units: 3 parts
    modem = ModemSimulator()
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
        running(make_gateway(settings, link, tmp_path / "sent.jsonl")) as gw,
    ):
        await publish(
            settings,
            [
                outside("sms:command-centre", "13900000001"),  # allow-listed: paged
                outside("sms:stranger", "13700000000"),  # not allowed
                outside("sms:nobody", None),  # no number at all
                long,
                stale,
                callout("R001"),
            ],
        )
        letters = await records(settings, "deadletter", 4)
        await wait_committed(settings, "radio-gateway", 6)
        assert sorted(d["reason"] for d in letters) == ["not_allowed", "other", "stale", "too_long"]
        assert {d["topic"] for d in letters} == {settings.topic("callouts")}
        assert any("old, the TTL is 600 s" in d["error"] for d in letters)
        assert not any("13700000000" in d["error"] for d in letters)  # masked
        for reason in ("not_allowed", "unknown", "stale", "too_long"):
            assert metric(gw, "engine_radio_callouts_skipped_total", reason=reason) == 1
    assert sorted(r.number for r in modem.received) == sorted(["13900000001", R1])


async def test_replies_after_a_restart_still_carry_the_area(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    paged = CallOut.model_validate({**callout("R001").model_dump(), "area": "humen"})
    modem = ModemSimulator()
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
    ):
        await publish(kafka_settings, [paged])
        async with running(make_gateway(kafka_settings, link, tmp_path / "sent.jsonl")):
            await records(kafka_settings, "acks", 1)
        # a new process: only its sent log (no history from acks) knows the area
        gateway = make_gateway(kafka_settings, link, tmp_path / "sent.jsonl", read_history=False)
        async with running(gateway):
            host.inject_sms(R1, f"1 {code('R001')}")
            _, accepted = await records(kafka_settings, "acks", 2)
    assert (accepted["kind"], accepted["area"]) == ("accept", "humen")
    assert len(modem.received) == 1


async def set_topic_config(settings: Settings, logical: str, **configs: str) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC,
            settings.topic(logical),
            configs={k.replace("_", "."): v for k, v in configs.items()},
        )
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def test_a_bookkeeping_failure_stops_the_gateway_and_the_restart_finishes_it(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The SMS left, then Kafka refused its delivered Ack (too large: not retriable).
    The gateway counts it and stops instead of carrying on with the offset never
    committed; the restart publishes the Ack and commits, without a second SMS."""
    modem = ModemSimulator()
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
    ):
        await set_topic_config(kafka_settings, "acks", max_message_bytes="64")
        await publish(kafka_settings, [callout("R001")])
        gateway = make_gateway(kafka_settings, link, tmp_path / "sent.jsonl")
        with pytest.raises(ExceptionGroup) as failed:
            await gateway.run()
        gateway.sent.close()
        assert failed.group_contains(BookkeepingFailed)
        assert metric(gateway, "engine_radio_bookkeeping_failures_total") == 1
        assert [r.number for r in modem.received] == [R1]

        await set_topic_config(kafka_settings, "acks", max_message_bytes="1048588")
        again = make_gateway(kafka_settings, link, tmp_path / "sent.jsonl")
        async with running(again) as gw:
            [delivered] = await records(kafka_settings, "acks", 1)
            await wait_committed(kafka_settings, "radio-gateway", 1)
            assert metric(gw, "engine_radio_callouts_skipped_total", reason="duplicate") == 1
        assert delivered["idempotency_key"] == f"{INCIDENT}/0/R001"
        assert [r.number for r in modem.received] == [R1]
        assert TEXT not in [r.text for r in modem.received]  # it carried R001's own code
