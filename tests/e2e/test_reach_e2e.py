"""Issue 13 end to end, every part real: the private Kafka broker, `engine worker` and
`engine gateway --dialect poc-hex` as processes, the module simulator on a pty in this
test (so the test can take handsets off the network and kill the gateway under it),
espeak-ng speaking the PoC call-out.

One night fire at 林村新围路12号 (KZ118 and its linked units) and one fire at KZ001:

- KZ118's talk group (vendor id 860200118 from the registry) is joined, PTT is keyed,
  the call-out is spoken and PTT released;
- U01409's guard (V00785) declines; the nearest free unit (U00752 of KZ063, KZ118 has no
  spare with people) is paged: the time from the decline's Ack to the substitute's
  ``sent`` Ack (both the gateway's clock) is the figure reported;
- R001 (KZ001's handset) drops off the PoC network: the gateway reports it on
  unit-status, the worker applies it, and the KZ001 fire reaches R001's holder V00005
  by SMS on their phone instead of PoC;
- the gateway is SIGKILLed; R118 answers while no gateway runs; the reply waits on the
  module; the restarted gateway lists it, publishes exactly one Ack, then deletes it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.config import Settings
from engine.kafka.produce import producer
from engine.kafka.tail import tail
from engine.radio.simulator import HandsetScript, ModemSimulator, PtyModem
from engine.rules.plan import default_plan_bytes
from tests.worker_process import WorkerProcess, make_incident

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).resolve().parents[2] / "data" / "tangxia"
R118 = ("R118", 860100118, "14400000118")  # KZ118's handset: id, PoC user id, SIM
R001 = ("R001", 860100001, "14400000001")  # KZ001's handset
DECLINER = "16870050163"  # V00785, guard of U01409 (not in the zone team)
SUBSTITUTE = "15821179339"  # V03067, guard of U00752 (KZ063)
R001_HOLDER = "15961768337"  # V00005's own phone
TG_KZ118 = 860200118
WITHIN = 120.0


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ENGINE_TOPIC_PREFIX": settings.topic_prefix,
        "ENGINE_PARTITIONS": str(settings.partitions),
        "ENGINE_DATA_DIR": str(settings.data_dir),
    }


def _gateway(settings: Settings, device: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "gateway", "--device", device,
             "--registry", str(REGISTRY), "--dialect", "poc-hex", "--radio-id", "gw-e2e",
             "--metrics-port", "0"],
            env=_env(settings), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def _records(settings: Settings, logical: str) -> list[dict[str, Any]]:
    topic = settings.topic(logical)
    return [r["value"] async for r in tail(settings, topic, from_beginning=True, idle_timeout_s=1)]


async def _until(settings: Settings, logical: str, done: Any, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        found = await _records(settings, logical)
        if done(found):
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not seen on {logical} within {WITHIN} s")


async def _raise(settings: Settings, n: int, lat: float, lon: float) -> str:
    incident = make_incident(n, lat=lat, lon=lon, address="林村新围路12号")
    async with producer(settings) as p:
        await p.send_and_wait(settings.topic("incidents"), incident.to_json_bytes(), key=b"tangxia")
    return incident.id


def _at(ack: dict[str, Any]) -> float:
    return datetime.fromisoformat(ack["at"]).timestamp()


async def test_reaching_people_for_real(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings
    modem = ModemSimulator(
        delivery_reports=True,
        handsets={DECLINER: HandsetScript.decline(0.2)},
    )
    modem.poc_users = {R118[1]: R118[2], R001[1]: R001[2]}
    # the shipped plan, its deadlines made long: no stage may escalate while the test
    # looks at stage 0 on a slow machine (the ladders stay as shipped)
    plan = tmp_path / "plan.yaml"
    shipped = default_plan_bytes().decode("utf-8")
    plan.write_text(re.sub(r"ack_timeout_s: \d+", "ack_timeout_s: 900", shipped), "utf-8")
    worker = WorkerProcess(settings, tmp_path / "worker.log", plan=plan)
    gw_log = tmp_path / "gateway.log"
    async with PtyModem(modem, link=tmp_path / "ttyUSB0") as host:
        gateway = _gateway(settings, host.path, gw_log)
        try:
            await asyncio.to_thread(worker.start)

            # -- a handset drops off the PoC network: its holder is texted instead ---------
            host.modem.set_presence(R001[1], R001[2], online=False)
            host._poke()
            await _until(
                settings, "unit-status",
                lambda rs: any(r["unit_id"] == "R001" and r["radio_online"] is False for r in rs),
                "R001 offline",
            )  # fmt: skip
            await asyncio.sleep(2.0)  # unit-status and incidents are separate inputs

            # -- the night fire ------------------------------------------------------------
            fire = await _raise(settings, 1, 22.8031, 114.0842)
            calls = await _until(
                settings, "callouts",
                lambda rs: any(r["radio_id"] == "sms:V03067" for r in rs),
                "the substitute's call-out",
            )  # fmt: skip
            acks = await _until(
                settings, "acks",
                lambda rs: any(
                    r["radio_id"] == "sms:V03067" and r["kind"] == "sent" for r in rs
                ) and any(r["channel"] == "poc_group" and r["kind"] == "sent" for r in rs),
                "the substitute paged and the group call made",
            )  # fmt: skip
            decline = next(
                a for a in acks if a["kind"] == "decline" and a["radio_id"] == "sms:V00785"
            )
            paged = next(a for a in acks if a["radio_id"] == "sms:V03067" and a["kind"] == "sent")
            substitute_s = _at(paged) - _at(decline)
            decisions = await _records(settings, "decisions")
            sub = next(d for d in decisions if d.get("substitution"))
            assert sub["incident_id"] == fire
            assert sub["substitution"] == {"replaces": "U01409", "by": "U00752"}
            assert "U01409 declined, no spare unit in KZ118: substitute U00752" in sub["reasons"][0]
            assert SUBSTITUTE in [r.number for r in modem.received]
            assert substitute_s < 5.0, substitute_s  # measured figure reported; bound loose

            # the zone team's talk group: joined by its vendor id, keyed, spoken to, released
            group = next(c for c in calls if c["channel"] == "poc_group")
            assert (group["radio_id"], group["kind"]) == ("R118", "key_zone")
            assert modem.talk_group == TG_KZ118
            assert [p for p, _ in modem.ptt] == ["press", "release"]
            keyed_s = modem.ptt[1][1] - modem.ptt[0][1]
            assert keyed_s > 1.0  # espeak-ng's audio of the call-out, plus the tail
            poc = [c for c in modem.commands if c.startswith("AT+POC=")]
            i = poc.index(f"AT+POC=092200{TG_KZ118:08X}")
            assert poc[i + 1 : i + 3] == ["AT+POC=0B0000", "AT+POC=0C0000"]

            # -- the offline handset's holder -----------------------------------------------
            other = await _raise(settings, 2, 22.82528, 114.088357)  # at KZ001
            calls = await _until(
                settings, "callouts",
                lambda rs: any(r["incident_id"] == other and r["kind"] == "key_zone" for r in rs),
                "KZ001's call-outs",
            )  # fmt: skip
            kz001 = [c for c in calls if c["incident_id"] == other and c["group"] == "KZ001"]
            assert "sms:V00005" in {c["radio_id"] for c in kz001}
            assert "R001" not in {c["radio_id"] for c in kz001}
            await host.wait_for(
                lambda: R001_HOLDER in [r.number for r in modem.received], within=WITHIN
            )

            # -- a reply kept on the module across a gateway SIGKILL --------------------------
            record = next(r for r in modem.received if r.number == R118[2])
            code = re.search(r"#([0-9A-Z]{4})", record.text)
            assert code is not None
            gateway.send_signal(signal.SIGKILL)
            gateway.wait()
            host.inject_sms(R118[2], f"1 {code.group(1)}")
            assert len(modem.storage) == 1  # nobody read it: it waits on the module
            gateway = _gateway(settings, host.path, gw_log)
            acks = await _until(
                settings, "acks",
                lambda rs: any(r["radio_id"] == "R118" and r["kind"] == "accept" for r in rs),
                "R118's stored reply",
            )  # fmt: skip
            await host.wait_for(lambda: not modem.storage, within=WITHIN)
            await asyncio.sleep(2.0)  # nothing more comes
            acks = await _records(settings, "acks")
            accepts = [a for a in acks if a["radio_id"] == "R118" and a["kind"] == "accept"]
            assert len(accepts) == 1 and accepts[0]["incident_id"] == fire
            assert accepts[0]["reply_id"]
            print(f"substitute paged {substitute_s:.3f} s after the decline; PTT {keyed_s:.2f} s")
        except BaseException:
            print("--- gateway log ---\n", gw_log.read_text(errors="replace")[-4000:])
            print("--- worker log ---\n", worker.tail(80))
            raise
        finally:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
                await asyncio.to_thread(gateway.wait, 30)
            if worker.proc is not None and worker.proc.poll() is None:
                await asyncio.to_thread(worker.stop)
