"""What the channel ladder and the substitutes add to a Tangxia night fire (issue 13).

    .venv/bin/python bench/reach.py [--out FILE]

The night fire of the demo (22:40 on a Monday, 林村新围路12号: KZ118 and its linked
units) through the worker's own core (:class:`engine.streams.core.AreaCore`, the real
rules and plan), on the worker's clock, with a scripted night:

- KZ118's handset R118 has just lost coverage (no presence report yet): the group call
  goes out, but nothing reaches it; its holder V05701 answers 3 s after a text reaches
  their own phone;
- U01409's guard (V00785) declines after 8 s; whoever replaces a declined unit accepts
  22 s after being paged; night A: U01410 (V05717) accepts after 12 s, U01412 (V05721)
  after 25 s (both also KZ118 members); night B: the zone's phones stay silent, U01408's
  guard (V00784) accepts after 15 s; everyone else stays silent (it is night).

The same night is run three times: with the plan as shipped; without the ladders (every
contact one SMS, as before issue 13); without substitutes (declines only counted). Each
run prints its timeline (who was called, how, when, why; when the quorum was met) and
the comparison, and writes JSON (default bench/results/reach.json).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.models import Ack, Incident
from engine.registry.registry import load_registry
from engine.rules import followup, heal
from engine.rules.plan import LoadedPlan, Plan, load_plan
from engine.rules.world import World
from engine.streams.core import AreaCore
from engine.streams.events import AreaEvent

REPO = Path(__file__).resolve().parents[1]
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 30, 22, 40, tzinfo=CST)
END = 240.0  # seconds followed

NIGHTS: dict[str, dict[str, tuple[str, float]]] = {
    # A: two zone members who also guard linked units answer (each counts for the zone
    # team and their unit, as one person in two called groups does)
    "A: zone members answer": {
        "sms:V00785": ("decline", 8.0),
        "sms:V05717": ("accept", 12.0),
        "sms:V05721": ("accept", 25.0),
        "sms:V05701": ("accept", 3.0),  # R118's holder, on their own phone
    },
    # B: the zone's phones stay silent; only the leader (handset out of coverage) and
    # the units' own guards would answer
    "B: only the leader and unit guards": {
        "sms:V00785": ("decline", 8.0),
        "sms:V00784": ("accept", 15.0),
        "sms:V05701": ("accept", 3.0),
    },
}
SUBSTITUTE_ACCEPTS_AFTER = 22.0
UNREACHABLE = {"R118"}  # out of coverage: nothing delivered, no reply


def night_fire() -> Incident:
    return Incident(
        id="INC-20261130-NIGHT1",
        type="fire",  # type: ignore[arg-type]
        priority="P1",  # type: ignore[arg-type]
        location={"lat": 22.8031, "lon": 114.0842},  # type: ignore[arg-type]
        area="tangxia",
        address="林村新围路12号",
        raised_at=T0,
    )


@contextmanager
def no_substitutes() -> Iterator[None]:
    """The counterfactual: declines are counted, nobody is sent in their place."""
    real = heal.substitute
    heal.substitute = lambda *a, **k: None  # type: ignore[assignment]
    try:
        yield
    finally:
        heal.substitute = real


def run(world: World, plan: LoadedPlan, replies: dict[str, tuple[str, float]]) -> dict[str, Any]:
    core = AreaCore({"tangxia": world}, plan, {})
    incident = night_fire()
    timeline: list[dict[str, Any]] = []
    queue: list[tuple[float, int, str, str]] = []  # (t, seq, address, kind)
    seq = 0
    scheduled: set[str] = set()
    substitutes: set[str] = set()
    quorum_at: float | None = None
    state = "raised"

    def absorb(fx: Any, t: float) -> None:
        nonlocal seq, quorum_at, state
        # decisions first: a substitute's call-out comes before its decision record
        for out in sorted(fx.out, key=lambda o: o.topic != "decisions"):
            value = json.loads(out.value)
            if out.topic == "decisions":
                sub = value.get("substitution")
                if sub:
                    substitutes.update(
                        a for r in value["recipients"] for a in r.get("contacts", [])
                    )
                what = (
                    f"substitute {sub['by']} for {sub['replaces']}"
                    if sub
                    else f"stage {value['stage']}: zone {(value['zone'] or {}).get('id')}"
                )
                timeline.append({"t": t, "event": "decision", "what": what,
                                 "why": value["reasons"][0]})  # fmt: skip
            elif out.topic == "callouts":
                extra = value.get("reason")
                timeline.append({"t": t, "event": "call", "what":
                                 f"{value['radio_id']} {value['channel']} ({value['kind']})",
                                 "why": extra})  # fmt: skip
                address = value["radio_id"]
                if address in scheduled or address in UNREACHABLE:
                    continue
                reply = replies.get(address)
                if reply is None and address in substitutes:
                    reply = ("accept", SUBSTITUTE_ACCEPTS_AFTER)
                if reply is not None:
                    scheduled.add(address)
                    seq += 1
                    heapq.heappush(queue, (t + reply[1], seq, address, reply[0]))
            elif out.topic == "incident-state":
                if value["state"] != state:
                    timeline.append(
                        {
                            "t": t,
                            "event": "state",
                            "what": f"{state} -> {value['state']}",
                            "why": "",
                        }
                    )
                    state = value["state"]  # fmt: skip
                if quorum_at is None and value["quorum"]["met"]:
                    quorum_at = t

    absorb(core.on_incident(incident, T0), 0.0)
    core.apply_writes()
    t = 0.0
    while t < END:
        due = [when for _, (_, when) in core._due.items()]
        next_tick = min(((d - T0).total_seconds() for d in due), default=END)
        next_reply = queue[0][0] if queue else END
        t = min(next_tick, next_reply, END)
        if t >= END:
            break
        now = T0 + timedelta(seconds=t)
        if next_reply <= next_tick:
            _, _, address, kind = heapq.heappop(queue)
            ack = Ack(incident_id=incident.id, radio_id=address, kind=kind, at=now)  # type: ignore[arg-type]
            timeline.append({"t": t, "event": "reply", "what": f"{address}: {kind}", "why": ""})
            fx = core.on_event(AreaEvent(kind="ack", at=now, area="tangxia", ack=ack), now)
        else:
            fx = core.on_event(
                AreaEvent(kind="tick", at=now, area="tangxia", incident_id=incident.id), now
            )
        absorb(fx, t)
        core.apply_writes()
    dispatch = core._load_dispatch(incident.id)
    assert dispatch is not None
    q = followup.quorum_status(dispatch)
    return {
        "quorum_met_s": quorum_at,
        "final_state": dispatch.status.value,
        "stages": dispatch.stage + 1,
        "zone_team_ok": q.zone_team_ok,
        "units_ok": q.units_ok,
        "timeline": timeline,
    }


def without_ladders(plan: LoadedPlan) -> LoadedPlan:
    bare = Plan.model_validate({**plan.plan.model_dump(), "ladders": {}})
    return LoadedPlan(bare, plan.version + "-no-ladders", plan.origin)


def show(name: str, result: dict[str, Any]) -> None:
    met = result["quorum_met_s"]
    when = "never" if met is None else f"+{met:.0f} s"
    print(f"\n== {name}: quorum met {when}, {result['stages']} stage(s), "
          f"ends {result['final_state']}")  # fmt: skip
    for e in result["timeline"]:
        if e["event"] == "call" and not e["why"]:
            continue  # plain texts: counted, not listed
        why = f"  [{e['why'].split(' | ')[-1]}]" if e["why"] else ""
        print(f"  +{e['t']:5.1f} s  {e['event']:8} {e['what']}{why}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reach.json")
    args = parser.parse_args()
    world = World.build(load_registry(REPO / "data" / "tangxia"))
    plan = load_plan()
    nights: dict[str, Any] = {}
    summary = []
    for night, replies in NIGHTS.items():
        full = run(world, plan, replies)
        bare = run(world, without_ladders(plan), replies)
        with no_substitutes():
            alone = run(world, plan, replies)
        for label, result in (
            ("the plan as shipped (ladders, substitutes)", full),
            ("without the ladders (one SMS each, as before)", bare),
            ("without substitutes", alone),
        ):
            show(f"night {night}; {label}", result)
            summary.append((night, label, result))
        nights[night] = {
            "replies": replies,
            "runs": {"shipped": full, "no_ladders": bare, "no_substitutes": alone},
        }
    print("\nnight | run | quorum met | stages | zone team ok | units ok | ends")
    for night, label, r in summary:
        met = "never" if r["quorum_met_s"] is None else f"+{r['quorum_met_s']:.0f} s"
        print(f"{night[:1]} | {label} | {met} | {r['stages']} | {r['zone_team_ok']} | "
              f"{r['units_ok']} | {r['final_state']}")  # fmt: skip
    doc = {
        "benchmark": "night fire at 林村新围路12号, 22:40: what ladders and substitutes add",
        "substitute_accepts_after_s": SUBSTITUTE_ACCEPTS_AFTER,
        "unreachable": sorted(UNREACHABLE),
        "nights": nights,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
