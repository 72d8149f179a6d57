"""`engine demo`: the main job on the embedded default, end to end, in one terminal.

Starts the handset simulator (a pty speaking AT commands, answering as the Tangxia
registry's handsets and phones), the radio gateway on that pty, the stream worker and
the operators' API with its console (the URL and a fresh operator token are printed);
raises sample Tangxia incidents through the API; follows each through decision,
call-outs, replies and acknowledgement to "on scene"; prints what happened; closes the
incidents (stand-down messages go out) and stops the processes. The Kafka broker is left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.errors import EngineError
from engine.kafka.tail import tail
from engine.scenario.runner import Proc as _Proc

REGISTRY = Path(__file__).resolve().parents[1] / "data" / "tangxia"

SAMPLES = [
    ("fire", "P1", 22.8031, 114.0842, "塘厦镇林村新围路12号", "三楼民房冒烟"),
    ("fight", "P2", 22.7935, 114.0611, "塘厦镇花园街商铺门口", "两人斗殴"),
    ("missing_person", "P1", 22.8190, 114.1052, "塘厦镇石潭埔小学校门", "7岁男孩走失"),
]


def _engine(env: dict[str, str]) -> list[str]:
    config = env.get("ENGINE_DEMO_CONFIG")
    return [sys.executable, "-m", "engine.cli", *(["--config", config] if config else [])]


def run_demo(settings: Settings, config: str | None) -> int:
    env = dict(os.environ)
    if config:  # every child reads the same file
        env["ENGINE_DEMO_CONFIG"] = config
    with tempfile.TemporaryDirectory(prefix="engine-demo-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        link = work / "ttyUSB0"
        sim = _Proc("simulator", ["simulate", "handsets", "--registry", str(REGISTRY),
                                  "--reply", "mixed", "--reply-delay", "1",
                                  "--on-scene-after", "3", "--link", str(link)],
                    work / "simulator.log", env)  # fmt: skip
        stack.callback(sim.stop)
        sim.wait_for(str(link), 30)
        print(f"handset simulator on {link} (AT commands, UCS2 SMS, Tangxia numbers)")
        gateway = _Proc("gateway", ["gateway", "--device", str(link), "--registry",
                                    str(REGISTRY), "--dialect", "poc-hex"],
                        work / "gateway.log", env)  # fmt: skip
        stack.callback(gateway.stop)
        worker = _Proc("worker", ["-v", "worker"], work / "worker.log", env)
        stack.callback(worker.stop)
        api = _Proc("api", ["api", "--port", str(settings.api_port)], work / "api.log", env)
        stack.callback(api.stop)
        worker.wait_for("worker ready", 120)
        api.wait_for("api ready", 60)
        token = _operator_token(env)
        url = f"http://127.0.0.1:{settings.api_port}"
        print("worker ready; gateway paging through the simulator; metrics on :9101, :9102")
        print(f"console: {url}/console/  operator token: {token}")
        ids = [_raise(url, token, *sample) for sample in SAMPLES]
        states = asyncio.run(_follow(settings, ids, within_s=90))
        for incident_id in ids:
            _report(settings, incident_id, states.get(incident_id))
        _summary(settings, ids)
        for incident_id in ids:
            subprocess.run(
                [*_engine(env), "incident", "close", incident_id,
                 "--who", "demo", "--why", "demo finished"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
        time.sleep(3)  # let the stand-down messages go out before stopping
    print("demo finished; the broker keeps running (`.venv/bin/engine broker stop`)")
    return 0


def _operator_token(env: dict[str, str]) -> str:
    """A fresh operator token for this run (the last one revoked): its last word."""
    subprocess.run([*_engine(env), "token", "revoke", "demo-operator"], env=env,
                   capture_output=True)  # fmt: skip
    done = subprocess.run(
        [*_engine(env), "token", "create", "--role", "operator", "--name", "demo-operator"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.split()[-1]


def _raise(url: str, token: str, *sample: Any) -> str:
    """Raised through the operators' API, as the console does."""
    import httpx

    kind, priority, lat, lon, address, description = sample
    body = {"type": kind, "priority": priority, "location": {"lat": lat, "lon": lon},
            "address": address, "description": description}  # fmt: skip
    r = httpx.post(f"{url}/v1/incidents", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    if r.status_code != 201:
        raise EngineError(f"raise refused ({r.status_code}): {r.text}")
    incident_id: str = r.json()["id"]
    print(f"raised {incident_id}: {kind} {priority} {address} ({description})")
    return incident_id


async def _follow(settings: Settings, ids: list[str], within_s: float) -> dict[str, dict[str, Any]]:
    """Latest incident-state of each incident, until all are on scene or time is up."""
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        async for r in tail(settings, settings.topic("incident-state"), from_beginning=True,
                            idle_timeout_s=1.0):  # fmt: skip
            if r["value"]["incident_id"] in ids:
                latest[r["value"]["incident_id"]] = r["value"]
        if all(latest.get(i, {}).get("state") in ("on_scene", "unanswered") for i in ids):
            break
    return latest


def _report(settings: Settings, incident_id: str, state: dict[str, Any] | None) -> None:
    print(f"\n== {incident_id}")
    if state is None:
        print("   no state yet (worker still busy?)")
        return
    decisions = asyncio.run(_decisions(settings, incident_id))
    for d in decisions:
        zone = d["zone"]["id"] if d["zone"] else "none"
        kinds: dict[str, int] = {}
        for r in d["recipients"]:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        called = ", ".join(f"{n} {k}" for k, n in kinds.items())
        print(f"   stage {d['stage']}: zone {zone}, called {called}")
        for reason in d["reasons"][:4]:
            print(f"     - {reason}")
    previous = None
    for t in state["timeline"]:  # the state changes, not every reply
        if t["state"] != previous:
            print(f"   {t['at'][11:19]} {t['state']:<12} {t['who']:<12} {t['what'][:64]}")
            previous = t["state"]
    replies: dict[str, int] = {}
    for ack in state.get("acks", []):
        replies[ack["kind"]] = replies.get(ack["kind"], 0) + 1
    q = state.get("quorum", {})
    print(
        f"   now {state['state']}; replies {replies}; quorum met: {q.get('met')} "
        f"(zone team {q.get('zone_team_ok')}, units {q.get('units_ok')}/{q.get('units_needed')})"
    )


def _summary(settings: Settings, ids: list[str]) -> None:
    """The run's summary (per incident and against NFPA 1225), as text, JSON and a plot."""
    from engine.scenario.runner import summary_from_topics
    from engine.scenario.summary import plot, render

    summary = summary_from_topics(settings, ids)
    out = settings.data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    plot(summary, out / "summary.png")
    print("\n== summary\n" + render(summary))
    print(f"written: {out / 'summary.json'}, {out / 'summary.png'}")


async def _decisions(settings: Settings, incident_id: str) -> list[dict[str, Any]]:
    return [
        r["value"]
        async for r in tail(
            settings, settings.topic("decisions"), from_beginning=True, idle_timeout_s=1.0
        )
        if r["value"]["incident_id"] == incident_id
    ]
