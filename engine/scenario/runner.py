"""`engine scenario run FILE`: plays a scenario against the whole system and summarises it.

Every run has topics of its own (a fresh prefix under the configured one, deleted at the
end unless ``--keep``), so no zone is held by an earlier run's incidents. The run starts
the handset simulator on a pty (replying as the scenario says), the radio gateway, the
worker and the API on the configured broker. It raises the incidents and sends the
commands through the API at their times, and injects the faults. While it plays it
prints one line per change. When every incident has settled (or ``settle_s`` passed) it
prints the summary (:mod:`engine.scenario.summary`), writes it as JSON and a PNG, and
stops what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import yaml

from engine import clock
from engine.config import DEFAULT_REGISTRY, Settings
from engine.errors import EngineError
from engine.geo.areas import load_area
from engine.kafka.tail import tail
from engine.kafka.topics import ensure_topics
from engine.rules.plan import default_plan_bytes
from engine.scenario.model import Scenario, ScenarioAction, ScenarioIncident, all_incidents
from engine.scenario.summary import plot, render, summarise

SETTLED = frozenset({"acknowledged", "on_scene", "closed", "cancelled", "unanswered"})


class Proc:
    """One `engine` child process, its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.args, self.log, self.env = name, args, log, env
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        config = self.env.get("ENGINE_DEMO_CONFIG")
        argv = [sys.executable, "-m", "engine.cli", *(["--config", config] if config else [])]
        with self.log.open("ab") as out:
            # a session of its own: Ctrl-C in the terminal reaches the runner only, which
            # then stops every child in order
            return subprocess.Popen([*argv, *self.args], stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env, start_new_session=True)  # fmt: skip

    def wait_for(self, text: str, timeout: float, after: int = 0) -> None:
        """Until ``text`` appears more than ``after`` times in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"{self.name} exited:\n{self.tail()}")
            if self.log.read_text(errors="replace").count(text) > after:
                return
            time.sleep(0.1)
        raise EngineError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def kill_and_restart(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = self._start()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("reason") or body.get("detail") or "") if isinstance(body, dict) else ""


def _plan_with_timeout(path: Path, timeout_s: float) -> Path:
    """The shipped plan with every stage's ack deadline set to ``timeout_s``."""
    plan = yaml.safe_load(default_plan_bytes())
    for response in plan["responses"]:
        for stage in response["stages"]:
            stage["ack_timeout_s"] = timeout_s
    path.write_text(yaml.safe_dump(plan, allow_unicode=True), encoding="utf-8")
    return path


def summary_from_topics(settings: Settings, incident_ids: list[str]) -> dict[str, Any]:
    """The summary of these incidents (in this order) from the topics: each one's latest
    ``incident-state``, and the ``decisions`` and ``acks``."""

    async def read(logical: str) -> list[dict[str, Any]]:
        topic = settings.topic(logical)
        return [r["value"] async for r in tail(settings, topic, from_beginning=True,
                                                idle_timeout_s=1.5)]  # fmt: skip

    wanted = set(incident_ids)
    latest: dict[str, dict[str, Any]] = {}
    for s in asyncio.run(read("incident-state")):
        if isinstance(s, dict) and s.get("incident_id") in wanted:
            latest[s["incident_id"]] = s
    states = [latest[i] for i in incident_ids if i in latest]
    return summarise(states, asyncio.run(read("decisions")), asyncio.run(read("acks")))


class Run:
    def __init__(
        self, settings: Settings, scenario: Scenario, work: Path, say: Callable[[str], None]
    ) -> None:
        self.scenario = scenario
        self.work = work
        self.say = say
        run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.settings = settings.model_copy(
            update={"topic_prefix": f"{settings.topic_prefix}run-{run_id}-"}
        )
        self.env = {
            **os.environ,
            "ENGINE_TOPIC_PREFIX": self.settings.topic_prefix,
            "ENGINE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "ENGINE_DATA_DIR": str(work),
            # one drill token raises for every caller of the town (a typhoon night's 200/min)
            "ENGINE_API_RAISE_PER_MINUTE": "100000",
        }
        if scenario.starts_at is not None:  # every process on the drill's clock
            self.env["ENGINE_CLOCK_OFFSET_S"] = f"{clock.offset_to(scenario.starts_at):.3f}"
        self.incidents = all_incidents(scenario, load_area(DEFAULT_REGISTRY / "area.geojson"))
        self.ids: dict[str, str] = {}
        self.broadcasts: list[str] = []
        self.t0 = 0.0
        self.url = ""
        self.token = ""
        self.worker: Proc
        self.gateway: Proc
        self.sim: Proc
        self.admin_token = ""
        self._states: dict[str, str] = {}

    # --- processes ----------------------------------------------------------------------
    def start(self, stack: ExitStack, port: int) -> None:
        report = asyncio.run(ensure_topics(self.settings))
        if not report.ok:
            raise EngineError(f"topics: {report.mismatched}")
        link = self.work / "ttyUSB0"
        h = self.scenario.handsets
        sim_args = ["simulate", "handsets", "--registry", str(DEFAULT_REGISTRY),
                    "--reply", h.reply, "--reply-delay", str(h.reply_delay_s),
                    "--on-scene-after", str(h.on_scene_after_s), "--link", str(link),
                    "--spread", str(h.spread)]  # fmt: skip
        for option in ("silent", "decline", "offline"):
            for group in getattr(h, option):
                sim_args += [f"--{option}", group]
        if h.positions_every_s is not None:
            sim_args += ["--positions-every", str(h.positions_every_s)]
        if h.sms_delay_s is not None:
            sim_args += ["--sms-delay", f"{h.sms_delay_s[0]}-{h.sms_delay_s[1]}"]
        self.sim = Proc("simulator", sim_args, self.work / "simulator.log", self.env)
        stack.callback(self.sim.stop)
        self.sim.wait_for(str(link), 30)
        self.gateway = Proc("gateway", ["gateway", "--device", str(link), "--registry",
                                        str(DEFAULT_REGISTRY), "--dialect", "poc-hex",
                                        "--metrics-port", "0"],
                            self.work / "gateway.log", self.env)  # fmt: skip
        stack.callback(self.gateway.stop)
        worker_args = ["-v", "worker", "--metrics-port", "0"]
        if self.scenario.ack_timeout_s is not None:
            plan = _plan_with_timeout(self.work / "plan.yaml", self.scenario.ack_timeout_s)
            worker_args += ["--plan", str(plan)]
        self.worker = Proc("worker", worker_args, self.work / "worker.log", self.env)
        stack.callback(self.worker.stop)
        api = Proc("api", ["api", "--port", str(port)], self.work / "api.log", self.env)
        stack.callback(api.stop)
        self.worker.wait_for("worker ready", 120)
        api.wait_for("api ready", 60)
        from engine.api.tokens import TokenStore

        store = TokenStore(self.work / "api-tokens.json")
        self.token = store.create("operator", "scenario")[1]
        self.admin_token = store.create("admin", "scenario-admin")[1]
        self.url = f"http://127.0.0.1:{port}"

    # --- the timeline -------------------------------------------------------------------
    def play(self) -> None:
        events: list[tuple[float, ScenarioIncident | ScenarioAction]] = [
            *((i.at_s, i) for i in self.incidents),
            *((a.at_s, a) for a in self.scenario.actions),
        ]
        events.sort(key=lambda e: e[0])
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), daemon=True)
        watcher.start()
        self.t0 = time.monotonic()
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            for at, event in events:
                time.sleep(max(0.0, self.t0 + at - time.monotonic()))
                if isinstance(event, ScenarioIncident):
                    self._raise(client, event)
                else:
                    self._act(client, event)
            deadline = time.monotonic() + self.scenario.settle_s
            while time.monotonic() < deadline and not self._settled():
                time.sleep(0.5)
            time.sleep(1.0)  # the last changes reach the board and are printed
        stop.set()

    def _line(self, text: str) -> None:
        self.say(f"+{time.monotonic() - self.t0:6.1f}s  {text}")

    def _raise(self, client: httpx.Client, i: ScenarioIncident) -> None:
        body = {"type": i.type.value, "priority": i.priority.value,
                "location": i.location.model_dump(), "address": i.address,
                "description": i.description}  # fmt: skip
        r = client.post("/v1/incidents", json={k: v for k, v in body.items() if v is not None})
        if r.status_code != 201:
            raise EngineError(f"raising {i.name} refused ({r.status_code}): {r.text}")
        self.ids[i.name] = r.json()["id"]
        self._line(f"raised {i.name}: {self.ids[i.name]} {i.priority.value} {i.type.value} "
                   f"{i.address or ''}")  # fmt: skip

    def _act(self, client: httpx.Client, a: ScenarioAction) -> None:
        if a.fault is not None:
            return self._fault(a)
        if a.unit is not None:
            admin = {"Authorization": f"Bearer {self.admin_token}"}
            body = {"available": a.available, "reason": a.reason or "scenario"}
            r = client.patch(f"/v1/units/{a.unit}", headers=admin, json=body)
            duty = "on duty" if a.available else "off duty"
            return self._line(f"unit {a.unit} {duty}: {r.status_code} {_detail(r)}")
        if a.broadcast is not None:
            r = client.post(
                "/v1/broadcasts", json=a.broadcast.model_dump(mode="json", exclude_none=True)
            )
            if r.status_code != 202:
                return self._line(f"broadcast refused: {r.status_code} {_detail(r)}")
            b = r.json()
            self.broadcasts.append(str(b.get("broadcast_id")))
            return self._line(f"broadcast {b.get('broadcast_id')} to {', '.join(a.broadcast.to)}: "
                              f"{b.get('recipients')} people, {b.get('poc_groups')} PoC group "
                              f"calls, {b.get('sms')} SMS")  # fmt: skip
        incident_id = self.ids.get(a.incident or "")
        if incident_id is None:
            self._line(f"{a.command} {a.incident}: not raised yet, skipped")
            return
        body = {k: v for k, v in (("reason", a.reason), ("zone_id", a.zone_id)) if v}
        r = client.post(f"/v1/incidents/{incident_id}/{a.command}", json=body or None)
        self._line(f"operator {a.command} {a.incident}: {r.status_code} {_detail(r)}")

    def _fault(self, a: ScenarioAction) -> None:
        if a.fault == "unplug_radio":
            self.sim.proc.send_signal(signal.SIGUSR1)
            self._line(f"fault: the gateway's serial cable pulled for {a.for_s:g} s")
            replug = threading.Timer(a.for_s, self._replug)
            replug.daemon = True
            replug.start()
            return
        proc, ready = (
            (self.worker, "worker ready")
            if a.fault == "kill_worker"
            else (self.gateway, "sent log ")  # its start line
        )
        seen = proc.log.read_text(errors="replace").count(ready)
        proc.kill_and_restart()
        self._line(f"fault: {proc.name} SIGKILLed and started again")
        proc.wait_for(ready, 120, after=seen)
        self._line(f"{proc.name} ready again (its state restored from Kafka)")

    def _replug(self) -> None:
        if self.sim.proc.poll() is None:
            self.sim.proc.send_signal(signal.SIGUSR2)
            self._line("the serial cable is back")

    def _watch(self, stop: threading.Event) -> None:
        """One line per state change of the run's incidents, from the live board."""
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.Client(
                base_url=self.url, headers=headers, timeout=httpx.Timeout(10, read=None)
            ) as c,
            c.stream("GET", "/v1/events") as r,
        ):
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if not line.startswith("data: "):
                    continue
                inc = json.loads(line[6:]).get("incident")
                if not inc or inc.get("state") == self._states.get(inc["id"]):
                    continue
                self._states[inc["id"]] = inc["state"]
                name = next((n for n, i in self.ids.items() if i == inc["id"]), inc["id"])
                q = inc.get("quorum") or {}
                self._line(f"{name}: {inc['state']} (stage {inc.get('stage', 0)}, zone "
                           f"{inc.get('zone_id') or '-'}, accepted {len(inc.get('accepted', []))}, "
                           f"quorum {'met' if q.get('met') else 'not yet'})")  # fmt: skip

    def _settled(self) -> bool:
        return len(self.ids) == len(self.incidents) and all(
            self._states.get(i) in SETTLED for i in self.ids.values()
        )

    # --- the end ------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        order = [self.ids[i.name] for i in self.incidents if i.name in self.ids]
        result = summary_from_topics(self.settings, order)
        names = {v: k for k, v in self.ids.items()}
        for i in result["incidents"]:
            i["name"] = names.get(i["id"])
        return {"scenario": self.scenario.name, **result, "broadcasts": self._broadcasts()}

    def _broadcasts(self) -> list[dict[str, Any]]:
        """Each broadcast's progress as the run ends (from the API)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        out = []
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            for bid in self.broadcasts:
                r = client.get(f"/v1/broadcasts/{bid}")
                if r.status_code == 200:
                    p = r.json()
                    out.append({k: p.get(k) for k in ("broadcast_id", "state", "to", "recipients",
                                "messages", "poc_groups", "sent", "delivered", "failed",
                                "left", "replies", "eta_s")})  # fmt: skip
        return out

    def delete_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        from engine.config import ALL_TOPICS
        from engine.kafka.connection import client_kwargs

        async def go() -> None:
            admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
            await admin.start()
            try:
                await admin.delete_topics([self.settings.topic(t) for t in ALL_TOPICS])
            finally:
                await admin.close()

        with contextlib.suppress(Exception):
            asyncio.run(go())


def run_scenario(
    settings: Settings,
    scenario: Scenario,
    *,
    port: int,
    json_out: Path | None,
    plot_out: Path | None,
    keep: bool = False,
    linger: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Play ``scenario``; print and write its summary. With ``linger`` everything keeps
    running for the operator (console, handsets) until Ctrl-C or SIGTERM. Every process
    started is stopped and the run's topics deleted (unless ``keep``) on the way out,
    whatever the way out."""
    with tempfile.TemporaryDirectory(prefix="engine-scenario-") as tmp, ExitStack() as stack:
        run = Run(settings, scenario, Path(tmp), say)
        if not keep:
            stack.callback(run.delete_topics)
        say(f"scenario {scenario.name}: {len(run.incidents)} incidents, "
            f"{len(scenario.actions)} actions; topics {run.settings.topic_prefix}*")  # fmt: skip
        run.start(stack, port)
        say(f"console: {run.url}/console/  operator token: {run.token}")
        run.play()
        summary = run.summary()
        say("\n== summary\n" + render(summary))
        if json_out is not None:
            json_out.write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
        if plot_out is not None:
            plot(summary, plot_out)
        written = ", ".join(str(p) for p in (json_out, plot_out) if p is not None)
        if written:
            say(f"written: {written}")
        if linger:
            say(f"\nstill running: the console at {run.url}/console/ (token above), the "
                "simulated handsets, gateway and worker. Ctrl-C stops them all.")  # fmt: skip
            wait_for_stop()
        say("stopping the processes")
    return summary


def wait_for_stop() -> None:
    """Until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
