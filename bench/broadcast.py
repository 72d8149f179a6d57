"""Benchmark: the whole Tangxia publicity vanguard (宣传先锋队) by broadcast, at one and
two modems, with a P1 fire raised in the middle (issue 17).

    .venv/bin/python bench/broadcast.py [--sms-delay 1-3] [--scale 50] [--sample 60]
                                        [--fire-after 1000] [--out FILE]

Everything real but the network: the broadcast is planned from the shipped registry
(``data/tangxia``) and written to Kafka in one transaction; gateways (one per modem, one
consumer group) read ``broadcast-messages`` and drive the modem simulator on a pty with
real AT bytes; every message's ``+CMGS`` comes back after a per-SMS network delay drawn
uniformly from ``--sms-delay`` (1-3 s: a module's AT+CMGS round trip while the SMS centre
takes the message), which is what occupies the serial line.

At 1-3 s a message, 2,570 texts take well over an hour at one modem, so the full runs
draw the delays ``--scale`` times shorter (20-60 ms) and the time at the real delay is
computed per modem as (its drawn delays x scale) + (its measured time - its drawn
delays): the gateway's own time per message (Kafka, the sent log, the AT engine) is
measured, not assumed. A ``--sample`` of messages is also run at the real delay, at one
and two modems, to check that arithmetic against the clock. In every run a P1 call-out is
produced to ``callouts`` once ``--fire-after`` messages went (the sample: a third of
them) and its wait is measured: from reaching a gateway's queue to its Ctrl-Z at the
modem, against the delay of the one broadcast message that may be in flight.

Uses ENGINE_KAFKA_BOOTSTRAP if set, else starts the local broker on free ports. Prints
the figures and writes JSON (default bench/results/broadcast.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.kafka_bench import bench_broker, machine  # noqa: E402
from engine.broadcast.model import BroadcastIn, Target  # noqa: E402
from engine.broadcast.plan import PlannedBroadcast, plan_broadcast  # noqa: E402
from engine.broadcast.publish import read_book, write_broadcast  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.kafka.produce import producer  # noqa: E402
from engine.kafka.topics import ensure_topics  # noqa: E402
from engine.models import CallOut, Channel, Priority  # noqa: E402
from engine.radio.directory import StaticDirectory  # noqa: E402
from engine.radio.gateway import Gateway  # noqa: E402
from engine.radio.gateway_queue import Pending  # noqa: E402
from engine.radio.handset_sim import parse_delay  # noqa: E402
from engine.radio.metrics import GatewayMetrics  # noqa: E402
from engine.radio.sent_log import SentLog  # noqa: E402
from engine.radio.simulator import ModemSimulator, PtyModem  # noqa: E402
from engine.radio.transport import ModemLink  # noqa: E402
from engine.registry.registry import Registry, load_registry  # noqa: E402

TEXT = "台风“海葵”预计今晚在东莞登陆，请转告邻里：收好阳台物品，关好门窗，非必要不外出。"
TEXT_EN = None
KEY = b"bench-broadcast-reply-key"


@dataclass
class Run:
    modems: int
    messages: int
    sms_delay: tuple[float, float]
    elapsed_s: float  # first to last Ctrl-Z at the modems
    per_modem: list[dict[str, float]]
    p1_wait_s: float
    p1_behind: int  # broadcast messages written between the P1 reaching a gateway and it
    sent_once: bool

    def at_scale(self, scale: float) -> float:
        """The time at ``scale`` x the drawn delays: per modem, its delays scaled plus
        the gateway's own measured time; the slowest modem."""
        return max(
            m["network_s"] * scale + (m["elapsed_s"] - m["network_s"]) for m in self.per_modem
        )


def fire() -> CallOut:
    return CallOut(
        idempotency_key="INC-20261201-FIREBC/0/R001", incident_id="INC-20261201-FIREBC",
        stage=0, radio_id="R001", channel=Channel.SMS, priority=Priority.P1,
        text="[塘厦义警]P1 火情 #FIRE 林村新围路12号 478米 回1接警 2不能 3到场",
    )  # fmt: skip


@contextlib.asynccontextmanager
async def gateways(
    settings: Settings, reg: Registry, n: int, delay: tuple[float, float], tmp: Path
) -> AsyncIterator[tuple[list[Gateway], list[ModemSimulator], list[PtyModem]]]:
    directory = StaticDirectory.from_registry(reg)
    async with contextlib.AsyncExitStack() as stack:
        gws, modems, hosts = [], [], []
        for i in range(n):
            modem = ModemSimulator(sms_delay=delay, seed=1000 + i, delivery_reports=True)
            host = await stack.enter_async_context(PtyModem(modem))
            link = await stack.enter_async_context(ModemLink(host.path))
            log = SentLog(tmp / f"sent-{uuid.uuid4().hex[:6]}.jsonl")
            stack.callback(log.close)
            gw = Gateway(settings, link, directory, log, radio_id=f"gw{i}", group_id="bench",
                         metrics=GatewayMetrics(), reply_key=KEY)  # fmt: skip
            task = asyncio.create_task(gw.run())

            async def stop(task: asyncio.Task[None] = task) -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            stack.push_async_callback(stop)
            gws.append(gw)
            modems.append(modem)
            hosts.append(host)
        yield gws, modems, hosts


async def owned(gws: list[Gateway], topic: str, partitions: int) -> None:
    while True:
        mine = [
            {tp.partition for tp in gw._consumer.assignment() if tp.topic == topic}
            if gw._consumer is not None
            else set()
            for gw in gws
        ]
        if all(mine) and sum(len(m) for m in mine) == partitions:
            return
        await asyncio.sleep(0.1)


async def run_once(
    bootstrap: str, reg: Registry, plan: PlannedBroadcast, modems: int,
    delay: tuple[float, float], fire_after: int, tmp: Path,
) -> Run:  # fmt: skip
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"b-{uuid.uuid4().hex[:8]}-",
                        partitions=2, data_dir=tmp)  # fmt: skip
    report = await ensure_topics(settings)
    assert report.ok, report.mismatched
    total = len(plan.messages)
    async with gateways(settings, reg, modems, delay, tmp) as (gws, sims, hosts):
        await owned(gws, settings.topic("broadcast-messages"), 2)
        for gw in gws:
            await gw.broadcasts_caught_up.wait()
        p1_seen: list[tuple[int, float]] = []
        for gw in gws:
            put = gw.sender.put

            def watch(item: Pending, put: Any = put) -> None:
                if not item.broadcast:
                    sent = sum(len(m.received) for m in sims)
                    p1_seen.append((sent, asyncio.get_running_loop().time()))
                put(item)

            gw.sender.put = watch  # type: ignore[method-assign]
        await write_broadcast(settings, plan)
        started = time.monotonic()
        await hosts[0].wait_for(
            lambda: sum(len(m.received) for m in sims) >= fire_after, within=24 * 3600
        )
        async with producer(settings) as p:
            await p.send_and_wait(settings.topic("callouts"), fire().to_json_bytes(), key=b"R001")
        bid = plan.notice.broadcast_id
        last_print = 0.0
        while True:
            progress = (await read_book(settings)).get(bid)
            summary = progress.summary(time.time()) if progress else {"left": total, "sent": 0}
            if summary["left"] == 0:
                break
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                print(f"  {modems} modem(s): {summary['sent']}/{total} sent, about "
                      f"{summary.get('eta_s', 0):.0f} s left (after "
                      f"{time.monotonic() - started:.0f} s)", flush=True)  # fmt: skip
            await asyncio.sleep(5.0)  # reading the whole topic costs the gateways CPU
    received = [r for m in sims for r in m.received]
    broadcast = [r for r in received if r.number != "14400000001"]
    counts = Counter(r.number for r in broadcast)
    [(before, put_at)] = p1_seen
    owner = next(m for m in sims if any(r.number == "14400000001" for r in m.received))
    p1 = next(r for r in owner.received if r.number == "14400000001")
    behind = sum(1 for r in owner.received if r.at < p1.at) - sum(
        1 for r in owner.received if r.at <= put_at
    )
    per_modem = [
        {
            "messages": len(m.received),
            "elapsed_s": round(max(r.at for r in m.received) - min(r.at for r in m.received), 3),
            "network_s": round(m.network_seconds, 3),
        }
        for m in sims
    ]
    del before
    return Run(
        modems=modems,
        messages=len(broadcast),
        sms_delay=delay,
        elapsed_s=round(max(r.at for r in received) - min(r.at for r in received), 3),
        per_modem=per_modem,
        p1_wait_s=round(p1.at - put_at, 3),
        p1_behind=behind,
        sent_once=len(counts) == total and set(counts.values()) == {1},
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    real = parse_delay(args.sms_delay)
    scaled = (real[0] / args.scale, real[1] / args.scale)
    reg = load_registry(REPO / "data" / "tangxia")
    now = datetime.now(UTC)
    request = BroadcastIn(text=TEXT, to=[Target.PUBLICITY], priority="urgent")
    plan = plan_broadcast(request, [reg], actor="bench", now=now)
    n = plan.notice
    print(f"publicity vanguard: {n.recipients} people, {n.messages} messages "
          f"({n.poc_groups} PoC group calls, {n.sms} SMS)", flush=True)  # fmt: skip
    others = {}
    for targets in (["watch_groups"], ["key_zones"], ["units"], ["observers"],
                    ["publicity", "watch_groups", "key_zones", "units", "observers"]):  # fmt: skip
        other = plan_broadcast(
            BroadcastIn(text=TEXT, to=targets, priority="urgent"), [reg], actor="bench", now=now
        ).notice
        others["+".join(targets)] = {"recipients": other.recipients, "messages": other.messages,
                                     "poc_groups": other.poc_groups, "sms": other.sms}  # fmt: skip
    one_handset = plan_broadcast(request.model_copy(update={"to": [Target.KEY_ZONES]}), [reg],
                                 actor="bench", now=now, min_group=1).notice  # fmt: skip
    results: dict[str, Any] = {
        "machine": machine(),
        "sms_delay_s": list(real),
        "scale": args.scale,
        "text": TEXT,
        "publicity": {
            "recipients": n.recipients,
            "messages": n.messages,
            "poc_groups": n.poc_groups,
            "sms": n.sms,
        },
        "other_targets": others,
        "key_zones_with_single_handset_group_calls": {
            "messages": one_handset.messages,
            "poc_groups": one_handset.poc_groups,
        },
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp, bench_broker(Path(tmp)) as bootstrap:
        full: dict[int, Run] = {}
        for modems in (1, 2):
            print(f"full run, {modems} modem(s), {scaled[0] * 1000:.0f}-{scaled[1] * 1000:.0f} "
                  f"ms per SMS (1/{args.scale:g} of {args.sms_delay} s)", flush=True)  # fmt: skip
            run = await run_once(bootstrap, reg, plan, modems, scaled, args.fire_after,
                                 Path(tmp))  # fmt: skip
            full[modems] = run
            at_real = round(run.at_scale(args.scale), 1)
            results["runs"].append({"kind": "full", **run.__dict__, "at_real_delay_s": at_real})
            print(f"  {run.messages} messages in {run.elapsed_s:.1f} s; at {args.sms_delay} s a "
                  f"message: {run.at_scale(args.scale) / 60:.1f} min; P1 written "
                  f"{run.p1_wait_s * 1000:.0f} ms after it reached the gateway, "
                  f"{run.p1_behind} broadcast message(s) before it; each sent once: "
                  f"{run.sent_once}", flush=True)  # fmt: skip
        sample = None
        if args.sample:
            small = PlannedBroadcast(
                plan.notice.model_copy(update={"messages": args.sample}),
                plan.messages[: args.sample],
            )
            sample = {}
            for modems in (1, 2):
                print(f"sample run, {args.sample} messages, {modems} modem(s), "
                      f"{args.sms_delay} s per SMS", flush=True)  # fmt: skip
                run = await run_once(bootstrap, reg, small, modems, real, args.sample // 3,
                                     Path(tmp))  # fmt: skip
                sample[modems] = run
                predicted = full[modems].at_scale(args.scale) * args.sample / n.messages
                results["runs"].append({"kind": "sample", **run.__dict__,
                                        "predicted_from_full_s": round(predicted, 1)})  # fmt: skip
                print(f"  {run.messages} messages in {run.elapsed_s:.1f} s (the full run's "
                      f"arithmetic predicts {predicted:.1f} s for as many); P1 written "
                      f"{run.p1_wait_s * 1000:.0f} ms after it reached the gateway, "
                      f"{run.p1_behind} broadcast message(s) before it", flush=True)  # fmt: skip
    one, two = full[1], full[2]
    results["summary"] = {
        "messages": n.messages,
        "poc_group_calls": n.poc_groups,
        "minutes_at_1_modem": round(one.at_scale(args.scale) / 60, 1),
        "minutes_at_2_modems": round(two.at_scale(args.scale) / 60, 1),
        "ratio_2_to_1": round(two.at_scale(args.scale) / one.at_scale(args.scale), 3),
        "measured_ratio_2_to_1_scaled": round(two.elapsed_s / one.elapsed_s, 3),
        "p1_max_wait_s": max(r["p1_wait_s"] for r in results["runs"]),
        "p1_max_behind": max(r["p1_behind"] for r in results["runs"]),
    }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms-delay", default="1-3", metavar="MIN[-MAX]")
    parser.add_argument("--scale", type=float, default=50.0)
    parser.add_argument("--sample", type=int, default=60)
    parser.add_argument("--fire-after", type=int, default=1000)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "broadcast.json"
    )
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    s = results["summary"]
    print(
        f"\nTangxia publicity vanguard: {s['messages']} messages, {s['poc_group_calls']} PoC "
        f"group calls; at {args.sms_delay} s per SMS: {s['minutes_at_1_modem']} min at one "
        f"modem, {s['minutes_at_2_modems']} min at two ({s['ratio_2_to_1']}x); a P1 waited "
        f"at most {s['p1_max_wait_s'] * 1000:.0f} ms, behind at most {s['p1_max_behind']} "
        "broadcast message"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
